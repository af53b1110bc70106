package inproc

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// The guide's database pool, as printed (数据库优化 › 连接池配置).

// 数据库连接池配置
type DBConfig struct {
	Host            string        `json:"host"`
	Port            int           `json:"port"`
	Database        string        `json:"database"`
	Username        string        `json:"username"`
	Password        string        `json:"password"`
	MaxOpenConns    int           `json:"max_open_conns"`
	MaxIdleConns    int           `json:"max_idle_conns"`
	ConnMaxLifetime time.Duration `json:"conn_max_lifetime"`
	ConnMaxIdleTime time.Duration `json:"conn_max_idle_time"`
}

func NewOptimizedDB(cfg DBConfig) (*sql.DB, error) {
	dsn := fmt.Sprintf(
		"host=%s port=%d dbname=%s user=%s password=%s sslmode=disable",
		cfg.Host, cfg.Port, cfg.Database, cfg.Username, cfg.Password,
	)

	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}

	// 连接池配置
	db.SetMaxOpenConns(cfg.MaxOpenConns)       // 最大打开连接数
	db.SetMaxIdleConns(cfg.MaxIdleConns)       // 最大空闲连接数
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime) // 连接最大生存时间
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime) // 连接最大空闲时间

	// 测试连接
	if err := db.Ping(); err != nil {
		return nil, err
	}

	return db, nil
}

// 默认优化配置
func DefaultDBConfig() DBConfig {
	return DBConfig{
		MaxOpenConns:    25,               // 最大打开连接数
		MaxIdleConns:    5,                // 最大空闲连接数
		ConnMaxLifetime: 30 * time.Minute, // 连接最大生存时间
		ConnMaxIdleTime: 5 * time.Minute,  // 连接最大空闲时间
	}
}

// NewOptimizedDBOn is NewOptimizedDB's body on a connector instead of a DSN (the lab's counts
// the connections lib/pq opens, and the run's server comes from libpq's environment, its
// password never in a string): the same limits, lifetimes and Ping.
func NewOptimizedDBOn(connector driver.Connector, cfg DBConfig) (*sql.DB, error) {
	db := sql.OpenDB(connector)

	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)

	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}

	return db, nil
}
