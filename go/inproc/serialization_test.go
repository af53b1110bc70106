package inproc

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// cacheTTL is the guide's user cache TTL, as the port sets it.
const cacheTTL = 30 * time.Minute

// BenchmarkSerialization measures one case of the port's (experiments/serialization) for one
// serializer: the case in PERFLAB_CASE (encode, decode, redis: encode, SET with the TTL, GET,
// decode; redis-bytes: SET and GET of bytes encoded beforehand), the payload in
// PERFLAB_POINT_LABEL (user, page-100, audit-1mb), the run's Redis in PERFLAB_REDIS_URL and
// its key prefix in PERFLAB_REDIS_PREFIX.
func BenchmarkSerialization(b *testing.B) {
	for _, name := range []string{"json", "guide-msgpack", "msgpack-compact"} {
		b.Run(name, func(b *testing.B) {
			label := pointLabel("user")
			c := serialCase{name: name, ser: Serializers[name], op: os.Getenv("PERFLAB_CASE"), label: label}
			if c.op == "" {
				c.op = "encode"
			}
			switch label {
			case "user":
				u := PayloadUser(42)
				serialBench(b, c, &u, 1)
			case "page-100":
				p := PayloadPage(100)
				serialBench(b, c, &p, len(p))
			case "audit-1mb":
				a := AuditRows(AuditJSONBytes)
				serialBench(b, c, &a, len(a))
			default:
				b.Fatalf("unknown payload %q", label)
			}
		})
	}
}

type serialCase struct {
	name, op, label string
	ser             Serializer
}

// serialBench times the case on value (a pointer, as a service hands its serializer one: no
// boxing per call), after checking that the serializer round-trips it and Redis returns the
// bytes it was given.
func serialBench[T any](b *testing.B, c serialCase, value *T, records int) {
	ctx := context.Background()
	data, err := c.ser.Marshal(value)
	if err != nil {
		b.Fatal(err)
	}
	decode := func(data []byte) T {
		var out T
		if err := c.ser.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
		return out
	}
	if back := decode(data); !reflect.DeepEqual(&back, value) {
		b.Fatalf("%s does not round-trip %s", c.name, c.label)
	}
	var client *redis.Client
	key := os.Getenv("PERFLAB_REDIS_PREFIX") + c.label + ":go-" + c.name
	if c.op == "redis" || c.op == "redis-bytes" {
		client = redisClient(b)
		defer client.Close()
		if got, err := setGet(ctx, client, key, data); err != nil || !bytes.Equal(got, data) {
			b.Fatalf("GET returned other bytes than SET stored (%v)", err)
		}
	}
	switch c.op {
	case "encode":
		measure(b, records, func() []byte {
			d, err := c.ser.Marshal(value)
			if err != nil {
				b.Fatal(err)
			}
			return d
		})
	case "decode":
		measure(b, records, func() T { return decode(data) })
	case "redis":
		measure(b, records, func() T {
			d, err := c.ser.Marshal(value)
			if err != nil {
				b.Fatal(err)
			}
			got, err := setGet(ctx, client, key, d)
			if err != nil {
				b.Fatal(err)
			}
			return decode(got)
		})
	case "redis-bytes":
		measure(b, records, func() []byte {
			got, err := setGet(ctx, client, key, data)
			if err != nil {
				b.Fatal(err)
			}
			return got
		})
	default:
		b.Fatalf("unknown case %q", c.op)
	}
}

// setGet is one cache write and one read: SET with the TTL, then GET.
func setGet(ctx context.Context, client *redis.Client, key string, data []byte) ([]byte, error) {
	if err := client.Set(ctx, key, data, cacheTTL).Err(); err != nil {
		return nil, err
	}
	return client.Get(ctx, key).Bytes()
}

func TestEverySerializerRoundTripsThePortsPayloads(t *testing.T) {
	page, audit := PayloadPage(100), AuditRows(AuditJSONBytes)
	for name, ser := range Serializers {
		for _, v := range []any{&page, &audit} {
			data, err := ser.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem())
			if err := ser.Unmarshal(data, back.Interface()); err != nil || !reflect.DeepEqual(back.Interface(), v) {
				t.Fatalf("%s does not round-trip %T: %v", name, v, err)
			}
		}
	}
	// The port's sizes: about a megabyte of JSON; its first user.
	data, _ := json_(&audit)
	if n := len(data); n < AuditJSONBytes || n >= AuditJSONBytes+1000 {
		t.Fatalf("the audit payload is %d bytes of JSON", n)
	}
	if u := PayloadUser(42); u.ID != "00000000-0000-4000-8000-00000000002a" || u.CreatedAt != "2025-07-15T00:00:42.332598Z" {
		t.Fatalf("user 42: %+v", u)
	}
	// Named MessagePack keeps the field names, compact leaves them out.
	u := PayloadUser(1)
	named, _ := Serializers["guide-msgpack"].Marshal(&u)
	compact, _ := Serializers["msgpack-compact"].Marshal(&u)
	if !bytes.Contains(named, []byte("username")) || bytes.Contains(compact, []byte("username")) {
		t.Fatal("named msgpack has field names, compact has none")
	}
}

func json_(v any) ([]byte, error) { return Serializers["json"].Marshal(v) }
