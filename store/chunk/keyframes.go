package chunk

import (
	"container/list"
	"sync"
)

// Keyframe is a session's keyframe as an appender needs it.
type Keyframe struct {
	PageViewID string
	Seq        int
	Dict       []byte // Dict of the keyframe's raw events
}

// Keyframes is a cache of the keyframes of recently active sessions, so
// that an append need not read and decompress its session's keyframe. It
// holds at most MaxBytes of dictionaries, evicting the least recently
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
	kf      Keyframe
}

// NewKeyframes returns a cache holding at most maxBytes of dictionaries.
func NewKeyframes(maxBytes int) *Keyframes {
	return &Keyframes{MaxBytes: maxBytes}
}

// Get returns the session's cached keyframe.
func (c *Keyframes) Get(session string) (Keyframe, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[session]
	if !ok {
		return Keyframe{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*kfEntry).kf, true
}

// Add caches the session's keyframe.
func (c *Keyframes) Add(session string, kf Keyframe) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(kf.Dict) > c.MaxBytes {
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
	c.bytes += len(kf.Dict)
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
	c.bytes -= len(e.kf.Dict)
}
