// Package inproc holds the guide's Go code that perflab measures in process, as printed
// (types completed where the guide elides them), beside the fixes a Go engineer would write.
// Each function is measured by a benchmark in this package's tests, which the harness runs
// as a compiled test binary (go test -c), one sample per run.
package inproc

import "strings"

const queryPrefix = "SELECT * FROM users WHERE "

// BuildQuery is the guide's code as printed (应用层优化 › 字符串构建优化): a strings.Builder
// grown to an estimate of 20 bytes per condition.
func BuildQuery(conditions []string) string {
	if len(conditions) == 0 {
		return ""
	}

	// 预分配容量，避免多次内存分配
	var builder strings.Builder
	builder.Grow(len(conditions) * 20) // 估算总长度

	builder.WriteString("SELECT * FROM users WHERE ")

	for i, condition := range conditions {
		if i > 0 {
			builder.WriteString(" AND ")
		}
		builder.WriteString(condition)
	}

	return builder.String()
}

// BuildQueryConcat is the code the guide's advice replaces: q += " AND " + c, one new string
// of the exact size per condition.
func BuildQueryConcat(conditions []string) string {
	if len(conditions) == 0 {
		return ""
	}
	q := queryPrefix
	for i, c := range conditions {
		if i > 0 {
			q += " AND " + c
		} else {
			q += c
		}
	}
	return q
}

// BuildQueryJoin is the prefix and strings.Join: the joined conditions, then the query of the
// exact size (two allocations).
func BuildQueryJoin(conditions []string) string {
	if len(conditions) == 0 {
		return ""
	}
	return queryPrefix + strings.Join(conditions, " AND ")
}

// Conditions are the service's: a column, an operator and its placeholder, as the Rust port
// builds them (experiments/string-building: conditions).
func Conditions(n int) []string {
	columns := [...]string{"status =", "created_at >=", "username LIKE", "email =", "country =", "id <>"}
	out := make([]string, n)
	for i := range out {
		out[i] = columns[i%len(columns)] + " $" + itoa(i+1)
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
