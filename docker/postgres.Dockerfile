# PostgreSQL 15 from Debian's packages, run the way the official postgres image runs:
# arguments starting with '-' go to postgres (`-c port=…`); POSTGRES_HOST_AUTH_METHOD,
# POSTGRES_USER and POSTGRES_PASSWORD are honoured when the data directory is first made.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
# initdb once, at build time: a container asking for user postgres gets a copy instead of
# running initdb at each start, as perflab's local servers do (~1.3 s saved); with a password,
# the entrypoint sets it on the copy and requires it over TCP.
RUN initdb -D /var/lib/postgresql/template -U postgres --auth-local=trust --auth-host=trust >/dev/null \
 && echo "host all all all trust" >>/var/lib/postgresql/template/pg_hba.conf \
 && echo "listen_addresses = '*'" >>/var/lib/postgresql/template/postgresql.conf
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
