//! Docker provider: Postgres and Redis in containers, for machines with Docker but without the binaries.
use super::*;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

/// Pinned tags: a result must say exactly what it ran against.
pub const POSTGRES_IMAGE: (&str, &str) = ("postgres", "15.8-bookworm");
pub const REDIS_IMAGE: (&str, &str) = ("redis", "7.0.15-bookworm");

/// Whether a Docker daemon can be reached: `DOCKER_HOST`, or the default socket.
pub fn daemon_reachable() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_ok()
}

pub async fn provide(env: &mut Env, want_pg: bool, want_redis: bool) -> Result<(), ProvisionError> {
    if !daemon_reachable() {
        return Err(ProvisionError::NothingAvailable(
            "no Docker daemon is reachable (DOCKER_HOST unset, /var/run/docker.sock refuses): start Docker, or install the PostgreSQL and Redis server binaries (Debian/Ubuntu: apt-get install postgresql redis-server) and use --provider local".into(),
        ));
    }
    let fail = |server: &'static str, e: &dyn std::fmt::Display| ProvisionError::StartFailed {
        server,
        reason: format!("docker: {e}"),
    };
    if want_pg {
        let container = GenericImage::new(POSTGRES_IMAGE.0, POSTGRES_IMAGE.1)
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_cmd(PG_SETTINGS.iter().flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]).map(|s| {
                if s == "listen_addresses=127.0.0.1" {
                    "listen_addresses=*".to_owned()
                } else {
                    s
                }
            }))
            .start()
            .await
            .map_err(|e| fail("postgres", &e))?;
        let port = container.get_host_port_ipv4(5432.tcp()).await.map_err(|e| fail("postgres", &e))?;
        let (target, mut info) = external_pg(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await?;
        info.settings.insert("image".into(), format!("{}:{}", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1));
        env.pg = Some(target);
        env.servers.postgres = Some(info);
        env._containers.push(Box::new(container));
    }
    if want_redis {
        let container = GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_cmd(["redis-server", "--save", "", "--appendonly", "no"])
            .start()
            .await
            .map_err(|e| fail("redis", &e))?;
        let port = container.get_host_port_ipv4(6379.tcp()).await.map_err(|e| fail("redis", &e))?;
        let (target, mut info) = external_redis(&format!("redis://127.0.0.1:{port}")).await?;
        info.settings.insert("image".into(), format!("{}:{}", REDIS_IMAGE.0, REDIS_IMAGE.1));
        env.redis = Some(target);
        env.servers.redis = Some(info);
        env._containers.push(Box::new(container));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned() {
        for (name, tag) in [POSTGRES_IMAGE, REDIS_IMAGE] {
            assert!(!tag.is_empty() && tag != "latest", "{name}:{tag} must be a pinned tag");
            assert!(tag.chars().next().unwrap().is_ascii_digit(), "{name}:{tag} starts with a version");
        }
    }

    #[tokio::test]
    async fn without_a_daemon_docker_says_what_to_do() {
        if daemon_reachable() {
            return; // a machine with Docker runs the real thing instead
        }
        let req = Request { provider: Provider::Docker, need_postgres: true, ..Request::default() };
        let err = provision(&req).await.expect_err("no daemon");
        assert!(matches!(err, ProvisionError::NothingAvailable(_)), "{err}");
        assert!(err.is_user_error());
    }
}
