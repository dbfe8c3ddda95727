package tree

import "sync"

type cacheKey struct {
	level uint8
	index uint64
}

type cacheEntry struct {
	key        cacheKey
	nodes      []byte
	prev, next *cacheEntry
}

// tileCache is a bounded least-recently-used cache of full tiles, which
// never change once full. It is safe for concurrent use.
type tileCache struct {
	mu   sync.Mutex
	max  int // entries; <= 0 disables the cache
	m    map[cacheKey]*cacheEntry
	root cacheEntry // root.next is the most recently used entry
}

func newTileCache(max int) *tileCache {
	c := &tileCache{max: max, m: make(map[cacheKey]*cacheEntry)}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

func (c *tileCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *tileCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.root, c.root.next
	e.prev.next, e.next.prev = e, e
}

func (c *tileCache) get(k cacheKey) []byte {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		return nil
	}
	if c.root.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.nodes
}

func (c *tileCache) add(k cacheKey, nodes []byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[k]; e != nil {
		c.unlink(e)
		c.pushFront(e)
		return
	}
	e := &cacheEntry{key: k, nodes: nodes}
	c.m[k] = e
	c.pushFront(e)
	if len(c.m) > c.max {
		old := c.root.prev
		c.unlink(old)
		delete(c.m, old.key)
	}
}

func (c *tileCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
