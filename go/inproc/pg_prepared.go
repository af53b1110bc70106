package inproc

// PreparedSQL are the port's statements per case (fixtures/sql/pg-prepared, a Go test checks
// the copies): the guide's getUserByID, a 3-way join, the guide's createUser.
var PreparedSQL = map[string]string{
	"pk-lookup": `-- Shape 1: the guide's getUserByID.
SELECT id, username, email, created_at FROM users WHERE id = $1 AND deleted_at IS NULL
`,
	"join-3": `-- Shape 2: a user with their policies and access keys (users, policies, access_keys).
SELECT u.id, u.username, p.name, p.status, k.access_key_id FROM users u JOIN policies p ON p.user_id = u.id AND p.deleted_at IS NULL JOIN access_keys k ON k.user_id = u.id AND k.deleted_at IS NULL WHERE u.id = $1 AND u.deleted_at IS NULL
`,
	"insert": `-- Shape 3: the guide's createUser (with the status the table requires).
INSERT INTO users (id, username, email, status, created_at, updated_at) VALUES ($1, $2, $3, 'active', now(), now())
`,
}
