// Package chunk is the compressed form in which every store backend keeps a
// batch's events, so that SQLite and PostgreSQL write and read the same
// bytes.
//
// A session's events repeat themselves: every page load's full snapshot
// inlines much the same stylesheets and DOM. Compressing each batch alone
// finds none of that, so a session has one keyframe: the first chunk of at
// least MinKeyframe raw bytes stored for it, compressed alone (codec Zstd,
// at a higher level, since there is one per session). Every later chunk of
// the session is compressed with the keyframe's raw events as a zstd raw
// dictionary (codec ZstdDict), so a repeated stylesheet costs a few bytes.
// The backend records, per chunk, its codec and which chunk is its
// dictionary; Dict says which part of that chunk's events is used.
//
// Measured on a real Chromium session of the demo shop (seven page loads,
// testdata in store/storetest): each batch alone 3.8×, with a keyframe
// dictionary 11×.
//
// Archived asset bodies are encoded here too (EncodeAsset): textual ones
// compressed alone, binary ones as they are.
package chunk

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codecs, as stored in a chunk's codec column.
const (
	// Zstd is one zstd frame without a dictionary. Chunks written before
	// keyframes existed have it too.
	Zstd = "zstd"
	// ZstdDict is one zstd frame compressed with Dict(keyframe events) as a
	// raw dictionary (id dictID), keyframe being the chunk the row names.
	ZstdDict = "zstd-dict"
)

const (
	// MinKeyframe is the smallest raw chunk worth making a keyframe: a
	// session's first few batches may be tiny (an empty batch, a lone
	// mouse move), and a dictionary of them would find nothing later.
	MinKeyframe = 4 << 10
	// MaxDict bounds the dictionary, and so what a reader holds besides one
	// chunk: only the first MaxDict bytes of a keyframe's events are used.
	// Full snapshots put the stylesheets, the part most repeated, first.
	MaxDict = 1 << 20
	// dictID is written in every ZstdDict frame, so that decoding one
	// without its dictionary fails instead of producing garbage.
	dictID = 1
)

// Levels: SpeedFastest for the many small chunks, where higher levels gain
// little (see store/sqlite's BenchmarkCompressLevels); SpeedBetterCompression
// for chunks compressed alone, which are mostly keyframes, one per session.
const (
	levelDict  = zstd.SpeedFastest
	levelAlone = zstd.SpeedBetterCompression
)

// Dict returns the part of a keyframe's raw events used as the dictionary
// of the chunks that name it: at most the first MaxDict bytes. The result
// aliases keyframe.
func Dict(keyframe []byte) []byte {
	if len(keyframe) > MaxDict {
		return keyframe[:MaxDict]
	}
	return keyframe
}

// Shared encoders: EncodeAll is safe for concurrent use.
var (
	encodeAlone = mustEncoder(zstd.WithEncoderLevel(levelAlone), zstd.WithEncoderConcurrency(0))
	decodeAlone = mustDecoder()
	// A dictionary is an encoder option, so dictionary encoders are pooled
	// and given the dictionary per call.
	dictEncoders = sync.Pool{New: func() any {
		return mustEncoder(zstd.WithEncoderLevel(levelDict), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(windowDict), zstd.WithEncoderDictRaw(dictID, []byte("{}")))
	}}
)

func mustEncoder(opts ...zstd.EOption) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		panic(err) // only on invalid options
	}
	return e
}

func mustDecoder(opts ...zstd.DOption) *zstd.Decoder {
	d, err := zstd.NewReader(nil, append([]zstd.DOption{zstd.WithDecoderConcurrency(0)}, opts...)...)
	if err != nil {
		panic(err) // only on invalid options
	}
	return d
}

// Encode compresses a batch's events. With a nil or empty dict, the chunk is
// compressed alone (codec Zstd); otherwise dict must be Dict of the
// keyframe's events, and the caller records which chunk that is.
func Encode(events, dict []byte) (data []byte, codec string) {
	dst := make([]byte, 0, len(events)/8+64)
	if len(dict) == 0 {
		return encodeAlone.EncodeAll(events, dst), Zstd
	}
	e := dictEncoders.Get().(*zstd.Encoder)
	defer dictEncoders.Put(e)
	if err := e.ResetWithOptions(nil, zstd.WithEncoderDictRaw(dictID, dict)); err != nil {
		panic(err) // only for a dictionary over 2 GiB, which MaxDict rules out
	}
	return e.EncodeAll(events, dst), ZstdDict
}

// Decode decompresses one chunk; dict is Dict of its keyframe's events for
// codec ZstdDict and ignored otherwise. To decode many chunks of a session,
// use a Decoder.
func Decode(data []byte, codec string, dict []byte) ([]byte, error) {
	var d Decoder
	defer d.Close()
	return d.Decode(nil, data, codec, dict)
}

// Decoder decodes the chunks of a session one at a time, keeping the
// decoder of the last dictionary it was given. It is not safe for
// concurrent use. The zero value is ready to use; Close releases it.
type Decoder struct {
	dict []byte
	d    *zstd.Decoder
}

// Decode appends the decompressed chunk to dst. dict is Dict of the
// chunk's keyframe's events for codec ZstdDict and ignored otherwise;
// passing the same slice again reuses the decoder built for it.
func (d *Decoder) Decode(dst, data []byte, codec string, dict []byte) ([]byte, error) {
	switch codec {
	case Zstd:
		return decodeAlone.DecodeAll(data, dst)
	case ZstdDict:
		if len(dict) == 0 {
			return nil, fmt.Errorf("decode %s chunk: no dictionary", codec)
		}
		if d.d == nil || !same(d.dict, dict) {
			if err := d.reset(dict); err != nil {
				return nil, fmt.Errorf("decode %s chunk: %w", codec, err)
			}
		}
		out, err := d.d.DecodeAll(data, dst)
		if err != nil {
			return nil, fmt.Errorf("decode %s chunk: %w", codec, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unknown codec %q", codec)
	}
}

func (d *Decoder) reset(dict []byte) error {
	opt := zstd.WithDecoderDictRaw(dictID, dict)
	if d.d == nil {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), opt)
		if err != nil {
			return err
		}
		d.d = dec
	} else if err := d.d.ResetWithOptions(nil, zstd.WithDecoderDictDelete(), opt); err != nil {
		return err
	}
	d.dict = dict
	return nil
}

// same reports whether a and b are the same slice, not merely equal.
func same(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Close releases the decoder's resources.
func (d *Decoder) Close() {
	if d.d != nil {
		d.d.Close()
		d.d = nil
	}
	d.dict = nil
}
