package chunk

import (
	"fmt"
	"io"

	"github.com/loupe-dev/loupe/store"
)

// EventWriter writes a session's stored chunks, in the order they are
// added, as one JSON array of events, decompressing one chunk at a time:
// what both backends' WriteEvents stream. It is not safe for concurrent
// use.
type EventWriter struct {
	w     io.Writer
	dec   Decoder
	buf   []byte // the decompressed chunk, reused
	wrote bool   // whether an event was written, so the next needs a comma
}

// NewEventWriter starts the array on w. End closes the array; Release
// must follow in any case.
func NewEventWriter(w io.Writer) (*EventWriter, error) {
	if _, err := io.WriteString(w, "["); err != nil {
		return nil, err
	}
	return &EventWriter{w: w}, nil
}

// Add decompresses one chunk (dict is its keyframe's Dict for codec
// ZstdDict) and writes its events.
func (e *EventWriter) Add(data []byte, codec string, dict []byte) error {
	var err error
	if e.buf, err = e.dec.Decode(e.buf[:0], data, codec, dict); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	inner, err := store.EventsInner(e.buf)
	if err != nil || len(inner) == 0 {
		return err
	}
	if e.wrote {
		if _, err := io.WriteString(e.w, ","); err != nil {
			return err
		}
	}
	e.wrote = true
	_, err = e.w.Write(inner)
	return err
}

// End ends the array.
func (e *EventWriter) End() error {
	_, err := io.WriteString(e.w, "]")
	return err
}

// Release frees the decoder; call it when done, whether or not End was.
func (e *EventWriter) Release() { e.dec.Close() }
