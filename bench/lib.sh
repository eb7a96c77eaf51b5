# Shared by bench/run and bench/profile (sourced from the repository root): the
# tools, release binaries, a scratch folder on tmpfs that is removed on exit, and
# helpers to start nginx and wait for a listener.
scripts/prerequisites --bench
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo "Building release binaries (the first build takes several minutes) ..." >&2
cargo build --release --locked -p portvakt -p portvakt-bench --quiet
bin=target/release

# State on tmpfs: this measures the proxy, not the disk's fsync.
work=$(mktemp -d /dev/shm/portvakt-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for conf in "$work"/nginx-*.conf; do
    [ -e "$conf" ] && "$nginx_bin" -c "$conf" -s stop 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# One nginx instance: as many workers as the others have threads (`--threads`), its
# own pid and logs, no access log.
nginx_start() { # name, http-block body
  local name=$1 body=$2
  mkdir -p "$work/$name"
  cat >"$work/nginx-$name.conf" <<EOF
worker_processes ${threads:-1};
daemon on;
pid $work/$name/nginx.pid;
error_log $work/$name/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$name; proxy_temp_path $work/$name;
  fastcgi_temp_path $work/$name; uwsgi_temp_path $work/$name; scgi_temp_path $work/$name;
  keepalive_requests 1000000;
  $body
}
EOF
  "$nginx_bin" -c "$work/nginx-$name.conf"
}

wait_for() { # url, extra curl args...
  local url=$1; shift
  for _ in $(seq 300); do
    curl -s -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  echo "nothing answers at $url" >&2
  exit 1
}


# ~25 rules of the kind a real deployment writes.
realistic_rules() {
  cat <<'EOF'
      - { path: /healthz, match: exact, policy: bypass }
      - { path: /static, policy: bypass }
      - { path: /favicon.ico, match: exact, policy: bypass }
      - { path: /api/public, policy: bypass }
      - { path: /api, methods: [GET, HEAD], policy: password }
      - { path: /api, methods: [POST, PUT, PATCH, DELETE], policy: mfa }
      - { path: /admin, policy: mfa, max_age: 10m, groups: [admins] }
      - { path: /admin, policy: deny }
      - { path: /export, policy: deny }
      - { path: /reports, policy: mfa }
      - { path: /hr, policy: mfa, groups: [hr] }
      - { path: /hr, policy: deny }
      - { path: /payroll, policy: mfa, max_age: 15m, groups: [hr] }
      - { path: /payroll, policy: deny }
      - { path: /wiki, policy: password }
      - { path: /search, policy: password }
      - { path: /profile, policy: mfa }
      - { path: /settings, policy: mfa, max_age: 30m }
      - { path: /billing, policy: mfa, groups: [finance] }
      - { path: /billing, policy: deny }
      - { path: /internal, policy: deny }
      - { path: /metrics, policy: deny }
      - { path: /dept5/app5, policy: mfa }
      - { path: /dept5/app5/reports, policy: mfa }
EOF
}

# A Portvakt in front of the upstream ($UPSTREAM), for $HOST, with $threads worker
# threads: name, port, rules generator[, log filter].
# The access log (JSON, one line a request) goes to a file on tmpfs.
portvakt_config() {
  local name=$1 port=$2 rules=$3 level=${4:-info}
  mkdir -p "$work/$name"
  {
    cat <<EOF
listen: ["127.0.0.1:$port"]
state_dir: $work/$name/state
log: { format: json, level: "$level" }
server: { threads: $threads, grace_period: 1s, shutdown_timeout: 1s }
trusted_proxies: [127.0.0.1/32]
lockout: { max_failures: 100 }
users: { file: users.yaml }
apps:
  app:
    hosts: [$HOST]
    upstream: http://127.0.0.1:$UPSTREAM
    mfa: required
    login: { path: /login, username_field: username, session_cookie: sessionid }
    routes:
EOF
    $rules
  } >"$work/$name/portvakt.yaml"
  printf 'users:\n  user1: { groups: [staff] }\n' >"$work/$name/users.yaml"
}

