package inproc

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// redisOptions are the run's Redis as go-redis reads its URL (PERFLAB_REDIS_URL, never argv),
// go-redis's defaults for the rest.
func redisOptions(b *testing.B) *redis.Options {
	opts, err := redis.ParseURL(os.Getenv("PERFLAB_REDIS_URL"))
	if err != nil {
		// Not the error: url.Parse's quotes the URL, password included.
		b.Fatal("no Redis: PERFLAB_REDIS_URL is not set to a Redis URL")
	}
	return opts
}

// redisClient is a go-redis client of the run's Redis, with go-redis's defaults.
func redisClient(b *testing.B) *redis.Client {
	return redis.NewClient(redisOptions(b))
}

// redisBatchKeys is the port's key space (experiments/redis-batch): <prefix>user:<i>.
const redisBatchKeys = 10_000

// BenchmarkRedisBatch is a whole-sample benchmark (sample_test.go) measuring what the port's
// run measures: clients each doing batches of consecutive keys from a random start, one
// go-redis client shared by them (its pool gives each its connection).
func BenchmarkRedisBatch(b *testing.B) {
	for _, name := range []string{"get-per-key", "guide-mget", "set-per-key", "guide-pipeline-set"} {
		b.Run(name, func(b *testing.B) {
			batch := point(b, 10)
			if batch < 1 || batch > redisBatchKeys {
				b.Fatalf("batch size must be within 1..=%d", redisBatchKeys)
			}
			ctx := context.Background()
			client := redisClient(b)
			defer client.Close()
			prefix := os.Getenv("PERFLAB_REDIS_PREFIX")
			keys, values := make([]string, redisBatchKeys), make([]string, redisBatchKeys)
			for i := range keys {
				keys[i] = prefix + "user:" + strconv.Itoa(i)
				values[i] = MapValue(uint64(i))
			}
			closedLoop(b, envCount(b, "PERFLAB_CONCURRENCY", 1), func(c int) operation {
				rng := splitMix64(0xBA7C ^ uint64(c))
				return func() string {
					start := int(rng.next() % uint64(redisBatchKeys-batch+1))
					ks, vs := keys[start:start+batch], values[start:start+batch]
					found, err := batch, error(nil)
					switch name {
					case "get-per-key":
						found, err = GetPerKey(ctx, client, ks)
					case "guide-mget":
						found, err = MGetKeys(ctx, client, ks)
					case "set-per-key":
						err = SetPerKey(ctx, client, ks, vs, cacheTTL)
					default:
						err = PipelineSet(ctx, client, ks, vs, cacheTTL)
					}
					switch {
					case err != nil:
						return errorKind(err)
					case found != batch:
						return strconv.Itoa(found) + " of " + strconv.Itoa(batch) + " keys found"
					}
					return ""
				}
			}, func(m map[string]float64, _ map[string]uint64, perSec float64) {
				m["keys_per_sec"] = perSec * float64(batch)
			})
		})
	}
}
