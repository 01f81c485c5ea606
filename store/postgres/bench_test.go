package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/storetest"
)

// BenchmarkAppendBatch appends realistic rrweb batches (one in 20 holds a
// full snapshot) one after another; MB/s is of raw event JSON. The shared
// test server runs with fsync off.
func BenchmarkAppendBatch(b *testing.B) {
	bs, avg := benchBatches()
	db, _ := mustNew(b)
	ctx := context.Background()
	b.SetBytes(avg)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := db.AppendBatch(ctx, renamed(bs[i%len(bs)], i/len(bs))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBatchParallel is BenchmarkAppendBatch from GOMAXPROCS
// goroutines at once, each round of the recording a separate session.
func BenchmarkAppendBatchParallel(b *testing.B) {
	bs, avg := benchBatches()
	db, _ := mustNew(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetBytes(avg)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			if err := db.AppendBatch(ctx, renamed(bs[i%len(bs)], i/len(bs))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchBatches() ([]*store.Batch, int64) {
	bs := storetest.Recording("bench", 5, 20)
	var total int64
	for _, b := range bs {
		total += int64(len(b.Events))
	}
	return bs, total / int64(len(bs))
}

// renamed returns a copy of b in session round r, so that every append is
// new.
func renamed(b *store.Batch, r int) *store.Batch {
	c := *b
	c.SessionID = fmt.Sprintf("%s-%d", b.SessionID, r)
	c.PageViewID = fmt.Sprintf("%s-%d", b.PageViewID, r)
	c.Clicks = slices.Clone(b.Clicks)
	for i := range c.Clicks {
		c.Clicks[i].PageViewID = c.PageViewID
	}
	c.Inputs = slices.Clone(b.Inputs)
	for i := range c.Inputs {
		c.Inputs[i].PageViewID = c.PageViewID
	}
	c.Errors = slices.Clone(b.Errors)
	for i := range c.Errors {
		c.Errors[i].PageViewID = c.PageViewID
	}
	return &c
}
