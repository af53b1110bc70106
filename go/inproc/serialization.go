package inproc

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// The guide's serializers, as printed (缓存优化 › 序列化优化).

type Serializer interface {
	Marshal(v interface{}) ([]byte, error)
	Unmarshal(data []byte, v interface{}) error
}

// JSON序列化器
type JSONSerializer struct{}

func (s *JSONSerializer) Marshal(v interface{}) ([]byte, error) {
	return json.Marshal(v)
}

func (s *JSONSerializer) Unmarshal(data []byte, v interface{}) error {
	return json.Unmarshal(data, v)
}

// MessagePack序列化器（更高效）
type MsgPackSerializer struct{}

func (s *MsgPackSerializer) Marshal(v interface{}) ([]byte, error) {
	return msgpack.Marshal(v)
}

func (s *MsgPackSerializer) Unmarshal(data []byte, v interface{}) error {
	return msgpack.Unmarshal(data, v)
}

// CompactMsgPackSerializer writes a struct as an array, its field names left out (the port's
// msgpack-compact): what a Go engineer asks of vmihailenco/msgpack with
// UseArrayEncodedStructs. Its decoder reads a struct from a map or an array alike.
type CompactMsgPackSerializer struct{}

func (s *CompactMsgPackSerializer) Marshal(v interface{}) ([]byte, error) {
	// msgpack.Marshal's own way (a pooled encoder), with array-encoded structs.
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf bytes.Buffer
	enc.Reset(&buf)
	enc.UseArrayEncodedStructs(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *CompactMsgPackSerializer) Unmarshal(data []byte, v interface{}) error {
	return msgpack.Unmarshal(data, v)
}

// CachedUser is the port's User (experiments/serialization): a row of the guide's users
// table as its service caches it, with the port's field names.
type CachedUser struct {
	ID        string  `json:"id" msgpack:"id"`
	Username  string  `json:"username" msgpack:"username"`
	Email     string  `json:"email" msgpack:"email"`
	Status    string  `json:"status" msgpack:"status"`
	CreatedAt string  `json:"created_at" msgpack:"created_at"`
	UpdatedAt string  `json:"updated_at" msgpack:"updated_at"`
	DeletedAt *string `json:"deleted_at" msgpack:"deleted_at"`
}

// AuditLog is the port's row of the guide's audit_logs table.
type AuditLog struct {
	ID        int64  `json:"id" msgpack:"id"`
	UserID    string `json:"user_id" msgpack:"user_id"`
	Action    string `json:"action" msgpack:"action"`
	Resource  string `json:"resource" msgpack:"resource"`
	IPAddress string `json:"ip_address" msgpack:"ip_address"`
	UserAgent string `json:"user_agent" msgpack:"user_agent"`
	Success   bool   `json:"success" msgpack:"success"`
	CreatedAt string `json:"created_at" msgpack:"created_at"`
}

func payloadUUID(i uint64) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", i>>16, i&0xffff_ffff_ffff)
}

func payloadTimestamp(i uint64) string {
	s := i % 86_400
	return fmt.Sprintf("2025-%02d-%02dT%02d:%02d:%02d.%06dZ", i%12+1, i%28+1, s/3600, s/60%60, s%60, (i*7919)%1_000_000)
}

// PayloadUser is the port's user(i).
func PayloadUser(i uint64) CachedUser {
	status := "active"
	if i%5 == 0 {
		status = "inactive"
	}
	return CachedUser{
		ID: payloadUUID(i), Username: fmt.Sprintf("user_%08d", i), Email: fmt.Sprintf("user%d@example.com", i),
		Status: status, CreatedAt: payloadTimestamp(i), UpdatedAt: payloadTimestamp(i + 17),
	}
}

// PayloadPage is the port's page(n).
func PayloadPage(n uint64) []CachedUser {
	out := make([]CachedUser, n)
	for i := range out {
		out[i] = PayloadUser(uint64(i))
	}
	return out
}

var auditActions = [6]string{"login", "logout", "create_policy", "delete_policy", "create_access_key", "assume_role"}

// AuditRows is the port's audit_rows: rows until their JSON array holds jsonBytes.
func AuditRows(jsonBytes int) []AuditLog {
	var rows []AuditLog
	size := 2
	for i := uint64(0); size < jsonBytes; i++ {
		row := AuditLog{
			ID: 1_000_000 + int64(i), UserID: payloadUUID(i % 5000), Action: auditActions[i%6],
			Resource:  fmt.Sprintf("arn:perflab:iam::%012d:policy/p-%d", i%97, i%1013),
			IPAddress: fmt.Sprintf("10.%d.%d.%d", i%256, (i/256)%256, i%199+1),
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) perflab-client/1.0", Success: i%13 != 0,
			CreatedAt: payloadTimestamp(i),
		}
		b, err := json.Marshal(row)
		if err != nil {
			panic(err)
		}
		size += len(b) + 1
		rows = append(rows, row)
	}
	return rows
}

// AuditJSONBytes is the port's AUDIT_JSON_BYTES.
const AuditJSONBytes = 1_000_000

// Serializers are the port's formats, by the Go originals' names.
var Serializers = map[string]Serializer{
	"json":            &JSONSerializer{},
	"guide-msgpack":   &MsgPackSerializer{},
	"msgpack-compact": &CompactMsgPackSerializer{},
}
