package chunk

import (
	"bytes"
	"container/list"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Keyframe is a session's keyframe as an appender needs it.
type Keyframe struct {
	PageViewID string
	Seq        int
	Dict       []byte // Dict of the keyframe's raw events; not modified

	once sync.Once
	enc  *zstd.Encoder
}

// encoderBytes is roughly what a keyframe's encoder holds, counted
// against a cache's MaxBytes: its hash tables and block buffers at
// SpeedFastest, and a history of its window and one block (BenchmarkSession
// measures 0.92 MB for a session with a 33 KB keyframe, the encoder and
// the keyframe's copy included).
func encoderBytes(dict []byte) int { return 640<<10 + keyframeWindow(dict) + 128<<10 }

// windowDict is the window of dictionary encoders. zstd's default (8 MiB)
// makes each encoder allocate and zero an 8 MiB history, once per
// session; a batch is compressed against the dictionary (at most MaxDict)
// and itself, so matches seldom reach further.
const windowDict = MaxDict

// keyframeWindow is the window of a keyframe's own encoder: the smallest
// power of two of at least twice its dictionary and minKeyframeWindow. A
// match must reach back less than the window, and a chunk's byte at
// offset p is len(dict)+p after the dictionary's first byte: so the first
// len(dict) bytes of any chunk, at least, see the whole dictionary. With
// zstd's low-memory option the encoder's history is then the window and a
// block (256–384 KiB for a typical 20–100 KB keyframe) rather than at
// least 1 MiB, allocated and zeroed once per session.
func keyframeWindow(dict []byte) int {
	w := minKeyframeWindow
	for w < 2*len(dict) {
		w <<= 1
	}
	return w
}

const minKeyframeWindow = 128 << 10

// Encode compresses a later chunk of the keyframe's session against it,
// like Encode(events, k.Dict), but with an encoder kept for this keyframe:
// loading a dictionary into an encoder costs about as much as compressing
// a batch. Safe for concurrent use; concurrent calls take turns.
func (k *Keyframe) Encode(events []byte) (data []byte, codec string) {
	k.once.Do(func() {
		k.enc = mustEncoder(zstd.WithEncoderLevel(levelDict), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(keyframeWindow(k.Dict)), zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderDictRaw(dictID, k.Dict))
	})
	return k.enc.EncodeAll(events, make([]byte, 0, len(events)/8+64)), ZstdDict
}

// Keyframes is a cache of the keyframes of recently active sessions, so
// that an append need not read and decompress its session's keyframe. It
// holds at most MaxBytes of dictionaries and their encoders, evicting the least recently
// used. A keyframe never changes once stored, so entries are never stale
// while their session exists; a backend that deletes sessions calls Forget.
// It is safe for concurrent use; the zero value caches nothing.
type Keyframes struct {
	MaxBytes int

	mu    sync.Mutex
	bytes int
	order *list.List // of *kfEntry, most recently used first
	index map[string]*list.Element
}

type kfEntry struct {
	session string
	kf      *Keyframe
}

// NewKeyframes returns a cache holding at most maxBytes of dictionaries
// and encoders.
func NewKeyframes(maxBytes int) *Keyframes {
	return &Keyframes{MaxBytes: maxBytes}
}

// Get returns the session's cached keyframe, or nil.
func (c *Keyframes) Get(session string) *Keyframe {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[session]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*kfEntry).kf
}

// Add caches the session's keyframe.
func (c *Keyframes) Add(session string, kf *Keyframe) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size(kf) > c.MaxBytes {
		return
	}
	if c.index == nil {
		c.index = make(map[string]*list.Element)
		c.order = list.New()
	}
	if el, ok := c.index[session]; ok {
		c.remove(el)
	}
	c.index[session] = c.order.PushFront(&kfEntry{session: session, kf: kf})
	c.bytes += size(kf)
	for c.bytes > c.MaxBytes {
		c.remove(c.order.Back())
	}
}

// Forget drops the session's keyframe.
func (c *Keyframes) Forget(session string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[session]; ok {
		c.remove(el)
	}
}

func (c *Keyframes) remove(el *list.Element) {
	e := c.order.Remove(el).(*kfEntry)
	delete(c.index, e.session)
	c.bytes -= size(e.kf)
}

func size(kf *Keyframe) int { return len(kf.Dict) + encoderBytes(kf.Dict) }

// NewKeyframe returns the keyframe of chunk (pageView, seq) whose raw
// events are raw: its Dict is copied, so raw may be reused or released.
func NewKeyframe(pageView string, seq int, raw []byte) *Keyframe {
	return &Keyframe{PageViewID: pageView, Seq: seq, Dict: bytes.Clone(Dict(raw))}
}

// Encoded is a batch's events as a backend stores them.
type Encoded struct {
	Data  []byte
	Codec string
	// Dict is the keyframe Data was compressed against; nil if alone.
	Dict *Keyframe
	// IsKeyframe: compressed alone and large enough to become the
	// session's keyframe if it has none yet.
	IsKeyframe bool
}

// EncodeBatch compresses a batch's events against kf, the session's
// keyframe, or alone if kf is nil.
func EncodeBatch(events []byte, kf *Keyframe) Encoded {
	if kf != nil {
		data, codec := kf.Encode(events)
		return Encoded{Data: data, Codec: codec, Dict: kf}
	}
	data, codec := Encode(events, nil)
	return Encoded{Data: data, Codec: codec, IsKeyframe: len(events) >= MinKeyframe}
}
