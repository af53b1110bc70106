package inproc

import (
	"strconv"
	"sync"
	"unsafe"
)

// SharedMap is what the concurrent-map experiment asks of a map (experiments/concurrent-map):
// a read of a key's value (its length, read in place) and a store of a value for a key.
type SharedMap interface {
	ReadLen(k uint64) (int, bool)
	Store(k uint64, v string)
}

// RWMutexMap is the guide's alternative to sync.Map, and the baseline: a map behind a
// sync.RWMutex, readers sharing the lock.
type RWMutexMap struct {
	mu sync.RWMutex
	m  map[uint64]string
}

func (m *RWMutexMap) ReadLen(k uint64) (int, bool) {
	m.mu.RLock()
	v, ok := m.m[k]
	m.mu.RUnlock()
	return len(v), ok
}

func (m *RWMutexMap) Store(k uint64, v string) {
	m.mu.Lock()
	m.m[k] = v
	m.mu.Unlock()
}

// MutexMap is a map behind one sync.Mutex, for reads and writes alike.
type MutexMap struct {
	mu sync.Mutex
	m  map[uint64]string
}

func (m *MutexMap) ReadLen(k uint64) (int, bool) {
	m.mu.Lock()
	v, ok := m.m[k]
	m.mu.Unlock()
	return len(v), ok
}

func (m *MutexMap) Store(k uint64, v string) {
	m.mu.Lock()
	m.m[k] = v
	m.mu.Unlock()
}

// SyncMap is the guide's L1 (MultiLevelCache's l1 *sync.Map): Go's own sync.Map (a hash-trie
// since Go 1.24), keys and values as interfaces, as the guide stores them.
type SyncMap struct{ m sync.Map }

func (m *SyncMap) ReadLen(k uint64) (int, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		return 0, false
	}
	return len(v.(string)), true
}

func (m *SyncMap) Store(k uint64, v string) { m.m.Store(k, v) }

// shards is the sharded map's number of parts.
const shards = 32

// ShardedMap is the fix a Go engineer writes for write contention: the key's part, each a map
// behind its own RWMutex (padded apart, so neighbouring locks share no cache line).
type ShardedMap struct {
	parts [shards]struct {
		RWMutexMap
		_ [64 - unsafe.Sizeof(RWMutexMap{})%64]byte
	}
}

func (m *ShardedMap) part(k uint64) *RWMutexMap { return &m.parts[k%shards].RWMutexMap }

func (m *ShardedMap) ReadLen(k uint64) (int, bool) { return m.part(k).ReadLen(k) }
func (m *ShardedMap) Store(k uint64, v string)     { m.part(k).Store(k, v) }

// MapKeys is the experiment's key space.
const MapKeys = 10_000

// MapValue is the port's value for key k (harness::kit::redis_util::user_json).
func MapValue(k uint64) string {
	email := "user" + strconv.FormatUint(k, 10) + "@example.com"
	if k%10 == 3 {
		email = "User" + strconv.FormatUint(k, 10) + "@Example.com"
	}
	var buf [48]byte
	id := appendPadded(buf[:0], k>>16, 16, 8)
	id = appendPadded(append(id, "-0000-4000-8000-"...), k, 16, 12)
	return `{"id":"` + string(id) + `","username":"user_` + string(appendPadded(nil, k, 10, 8)) +
		`","email":"` + email + `","status":"active","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}`
}

// NewSharedMap is a map of the named kind, filled with every key (as the port's new_map).
func NewSharedMap(kind string) SharedMap {
	var m SharedMap
	switch kind {
	case "rwmutex":
		m = &RWMutexMap{m: make(map[uint64]string)}
	case "mutex":
		m = &MutexMap{m: make(map[uint64]string)}
	case "guide-sync-map":
		m = &SyncMap{}
	case "sharded":
		s := &ShardedMap{}
		for i := range s.parts {
			s.parts[i].m = make(map[uint64]string)
		}
		m = s
	default:
		return nil
	}
	for k := uint64(0); k < MapKeys; k++ {
		m.Store(k, MapValue(k))
	}
	return m
}
