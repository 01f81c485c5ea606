#!/usr/bin/env bash
# Loupe's proxy benchmark: Loupe against nginx, on one machine, in one run.
#
#   bench/run.sh            (or `make bench`, which builds bin/loupe first)
#
# One static origin (nginx, sendfile, gzip off: bodies are identity) serves a
# ~50 KB HTML form page and a ~20 KB stylesheet. In front of it, on their own
# loopback ports:
#   nginx-proxy      nginx proxy_pass (upstream keepalive)       the baseline
#   nginx-subfilter  nginx proxy_pass + sub_filter '<head>' → recorder tag
#   loupe            bin/loupe serve (injects the tag and masks form fields;
#                    archives stylesheets, fonts and images: the default)
#   loupe-noarchive  the same with --archive=false (no asset capture), so
#                    that the archive's capture cost is measured in the run
# and the origin is measured directly too. Each front end is checked to do
# what it claims (tag present or absent, asset byte for byte), warmed up, then
# measured with wrk (closed loop) for each of {page, asset}: under load
# (-t2 -c32) and on one connection (-t1 -c1, latency without queueing),
# ROUNDS times with the order of front ends rotated between rounds.
# Reported: the median over rounds of requests/s, p50, p99 and the front
# end's own CPU time per request, with ratios to nginx proxy_pass (and to
# sub_filter) from the same run, and the goals checked against them, plus
# the asset capture's cost: Loupe with the archive on against off.
#
# Then the time to first byte of a large page (about 5 MB, the form page's
# body repeated), direct and through Loupe: once served at full speed, once
# with the origin sending the first 32 KB and then trickling the rest at
# 4 MB/s (nginx limit_rate), as a slow origin streaming its page would. A
# rewriter that buffered the page would wait for all of it; a streaming one
# answers as soon as the head has arrived.
#
# Writes bench/results/latest.tsv (every round plus the medians),
# bench/results/ttfb.tsv (every TTFB sample) and bench/results/latest.md
# (the tables), and prints the tables.
#
# Environment: DURATION (s, default 10), ROUNDS (default 3), WARMUP (s,
# default 3), LAT_DURATION (s of the one-connection pass, default 5; 0 skips
# it), THREADS (wrk -t, default 2), CONNS (wrk -c, default 32),
# TTFB_RUNS (requests per TTFB figure, default 5; 0 skips the TTFB part),
# LOUPE_BIN (default bin/loupe; built with `make build` if missing),
# NGINX_WORKERS (default auto).
#
# wrk does not run JavaScript: no recorder runs and no session is stored.
# This measures the proxy path only (first-visit requests: wrk sends no
# cookie, so Loupe mints a session cookie and a page-view token every time).
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
LAT_DURATION=${LAT_DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
TTFB_RUNS=${TTFB_RUNS:-5}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOUPE_BIN=${LOUPE_BIN:-bin/loupe}
RESULTS=$ROOT/bench/results
# nginx lives in sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin

TAG='<script src="/__loupe/recorder.js" defer></script>'
# Loupe versions the URL (recorder.js?v=HASH): match the prefix.
TAG_MATCH='src="/__loupe/recorder.js'
TARGETS=(origin nginx-proxy nginx-subfilter loupe loupe-noarchive)
CONTENTS=(page asset)

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: FAIL: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- tools

ensure_tools() {
	local pkgs=()
	command -v nginx >/dev/null 2>&1 || pkgs+=(nginx-light)
	command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
	command -v curl >/dev/null 2>&1 || pkgs+=(curl)
	command -v gzip >/dev/null 2>&1 || pkgs+=(gzip)
	command -v awk >/dev/null 2>&1 || pkgs+=(mawk)
	[ ${#pkgs[@]} -eq 0 ] && return
	local sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "need ${pkgs[*]} and neither root nor sudo is available"
		sudo=(sudo)
	fi
	log "installing ${pkgs[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null
	# Debian's package starts the system nginx; this script never uses it.
	for t in nginx wrk curl; do command -v "$t" >/dev/null 2>&1 || die "$t still missing after install"; done
}

# ---------------------------------------------------------------- processes

WORK=
PIDS=()
cleanup() {
	local rc=$?
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "$rc" != 0 ] && [ -z "${KEEP_WORK:-}" ]; then
			for f in "$WORK"/*/error.log "$WORK"/loupe/loupe.log "$WORK"/loupe-noarchive/loupe.log; do
				[ -s "$f" ] && { log "last lines of $f:"; tail -n 5 "$f" >&2; }
			done
		fi
		[ -n "${KEEP_WORK:-}" ] && log "kept $WORK" || rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nothing listens on (and not already
# handed out by this script).
USED_PORTS=" "
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		case $USED_PORTS in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS="$USED_PORTS$p "
			echo "$p"
			return
		fi
	done
	die "no free loopback port found"
}

wait_http() { # url name pid
	local i
	for i in $(seq 1 100); do
		kill -0 "$3" 2>/dev/null || die "$2 exited at start"
		curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return
		sleep 0.1
	done
	die "$2 not answering at $1 after 10 s"
}

# cpu_ticks prints the user+system clock ticks used so far by a process and
# its direct children (nginx's workers are children of its master).
cpu_ticks() {
	local root=$1 total=0 pids=("$1") line rest p kids=""
	if [ -r "/proc/$root/task/$root/children" ]; then
		read -r kids <"/proc/$root/task/$root/children" || true
		# shellcheck disable=SC2206
		pids+=($kids)
	else
		for f in /proc/[0-9]*/stat; do
			read -r line <"$f" 2>/dev/null || continue
			rest=${line##*) }
			set -- $rest
			[ "$2" = "$root" ] && { p=${f#/proc/}; pids+=("${p%/stat}"); }
		done
	fi
	for p in "${pids[@]}"; do
		read -r line <"/proc/$p/stat" 2>/dev/null || continue
		rest=${line##*) }
		# After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt
		# cminflt majflt cmajflt utime stime ...
		set -- $rest
		total=$((total + ${12} + ${13}))
	done
	echo "$total"
}

# ---------------------------------------------------------------- nginx

NGINX_V=
nginx_conf() { # dir server-block...
	local dir=$1
	shift
	local temps="client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;"
	local m
	for m in fastcgi uwsgi scgi; do
		case $NGINX_V in *"--without-http_${m}_module"*) ;; *) temps="$temps
	${m}_temp_path $dir/tmp/$m;" ;; esac
	done
	local user=""
	if [ "$(id -u)" = 0 ]; then
		# As root nginx drops its workers to a user; Debian has no group
		# "nobody", nginx's default.
		user="user nobody $(getent group nogroup >/dev/null 2>&1 && echo nogroup || echo nobody);"
	fi
	cat <<EOF
# Generated by bench/run.sh; runs with -p $dir, never touches /etc/nginx.
$user
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	$temps
	types { text/html html; text/css css; }
	default_type application/octet-stream;
	keepalive_requests 100000;
	keepalive_timeout 65;
$*
}
EOF
}

start_nginx() { # name port server-block
	local name=$1 port=$2 block=$3 dir="$WORK/$1"
	mkdir -p "$dir/tmp"
	nginx_conf "$dir" "$block" >"$dir/nginx.conf"
	nginx -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/test.log" ||
		{ cat "$dir/test.log" >&2; die "nginx config for $name rejected"; }
	nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' \
		</dev/null >>"$dir/stdout.log" 2>&1 &
	PIDS+=($!)
	eval "PID_${name//-/_}=$!"
	wait_http "http://127.0.0.1:$port/style.css" "$name" "$!"
}

proxy_block() { # port extra-directives
	cat <<EOF
	upstream origin {
		server 127.0.0.1:$ORIGIN_PORT;
		keepalive 64;
		keepalive_requests 100000;
	}
	server {
		listen 127.0.0.1:$1;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			# Room for the whole 50 KB page in memory: nginx must not spill
			# to a temp file (its default is 8 x 4 KB).
			proxy_buffers 16 16k;
			proxy_buffer_size 16k;
$2
		}
	}
EOF
}

# ---------------------------------------------------------------- wrk

# parse_wrk prints: requests/s p50_ms p99_ms requests non2xx socket_errors
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
		if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /h$/)  return substr(v, 1, length(v) - 1) * 3600000
		return v + 0
	}
	/^Requests\/sec:/ { rps = $2 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/ requests in / { reqs = $1 }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
	END {
		if (rps == "" || p50 == "" || p99 == "") exit 1
		printf "%.2f\t%.3f\t%.3f\t%d\t%d\t%d\n", rps, p50, p99, reqs, non2xx, sockerr
	}' "$1"
}

url_of() { # target content
	local port
	case $1 in
	origin) port=$ORIGIN_PORT ;;
	nginx-proxy) port=$PROXY_PORT ;;
	nginx-subfilter) port=$SUBFILTER_PORT ;;
	loupe) port=$LOUPE_PORT ;;
	loupe-noarchive) port=$NOARCH_PORT ;;
	esac
	case $2 in
	page) echo "http://127.0.0.1:$port/form.html" ;;
	asset) echo "http://127.0.0.1:$port/style.css" ;;
	esac
}

pid_of() {
	case $1 in
	origin) echo "$PID_origin" ;;
	nginx-proxy) echo "$PID_nginx_proxy" ;;
	nginx-subfilter) echo "$PID_nginx_subfilter" ;;
	loupe) echo "$PID_loupe" ;;
	loupe-noarchive) echo "$PID_loupe_noarchive" ;;
	esac
}

# measure round mode target content: one wrk run, one TSV row into $RAW.
# mode "load" is wrk -t$THREADS -c$CONNS for $DURATION s (saturation: the
# front end, wrk and the origin share the machine's cores); mode "c1" is one
# connection for $LAT_DURATION s (latency with no queueing).
measure() {
	local round=$1 mode=$2 target=$3 content=$4 url pid out t0 t1 row wrkargs
	url=$(url_of "$target" "$content")
	pid=$(pid_of "$target")
	out="$WORK/wrk-$round-$mode-$target-$content.txt"
	case $mode in
	load) wrkargs=(-t"$THREADS" -c"$CONNS" -d"${DURATION}s") ;;
	c1) wrkargs=(-t1 -c1 -d"${LAT_DURATION}s") ;;
	esac
	t0=$(cpu_ticks "$pid")
	wrk "${wrkargs[@]}" --latency "$url" >"$out" 2>&1 ||
		{ cat "$out" >&2; die "wrk failed against $target $content"; }
	t1=$(cpu_ticks "$pid")
	row=$(parse_wrk "$out") || { cat "$out" >&2; die "could not parse wrk's output ($target $content)"; }
	# shellcheck disable=SC2086
	set -- $row
	[ "$5" = 0 ] || { cat "$out" >&2; die "$target $content: $5 non-2xx responses"; }
	[ "$4" -gt 0 ] || die "$target $content: no requests completed"
	[ "$6" = 0 ] || log "warning: $target $content: $6 socket errors"
	local cpu_us
	cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$4" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$target" "$content" "$1" "$2" "$3" "$cpu_us" "$4" "$6" >>"$RAW"
	log "round $round $(printf '%-4s %-16s %-6s' "$mode" "$target" "$content") $(printf '%10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req' "$1" "$2" "$3" "$cpu_us")"
}

# ---------------------------------------------------------------- main

ensure_tools
NGINX_V=$(nginx -V 2>&1)
HZ=$(getconf CLK_TCK)

if [ ! -x "$LOUPE_BIN" ]; then
	log "$LOUPE_BIN missing: running make build"
	make build >&2
fi
RECORDER=injector/recorder/dist/recorder.js
[ -s "$RECORDER" ] || die "$RECORDER missing: run make build"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/loupe-bench.XXXXXX")
# nginx's workers run as nobody when this script runs as root.
chmod 755 "$WORK"
mkdir -p "$WORK/www" "$WORK/loupe/data" "$WORK/loupe-noarchive/data" "$RESULTS"
# Run a copy: other builds may replace $LOUPE_BIN while this runs.
cp "$LOUPE_BIN" "$WORK/loupe/loupe"
LOUPE_SHA=$(sha256sum "$WORK/loupe/loupe" | cut -c1-12)
# The tree's commit when the binary is copied (commits made during the run
# do not change what is measured); LOUPE_BIN's build time says the rest.
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no -- . ":!bench" 2>/dev/null)" ] ||
	COMMIT="$COMMIT + uncommitted changes"
COMMIT="$COMMIT at start, bin/loupe sha256 $LOUPE_SHA built $(date -u -r "$LOUPE_BIN" +%Y-%m-%dT%H:%M:%SZ)"
bash bench/gen-content.sh "$WORK/www"
chmod 755 "$WORK/www"
chmod 644 "$WORK/www"/*
# The large page: the form page with its body repeated 100 times (~5 MB).
awk '
	/<body>/ { print; inbody = 1; next }
	/<\/body>/ { for (i = 0; i < 100; i++) printf "%s", body; inbody = 0 }
	inbody { body = body $0 "\n"; next }
	{ print }' "$WORK/www/form.html" >"$WORK/www/big.html"
BIG_BYTES=$(wc -c <"$WORK/www/big.html" | tr -d ' ')
PAGE_BYTES=$(wc -c <"$WORK/www/form.html" | tr -d ' ')
ASSET_BYTES=$(wc -c <"$WORK/www/style.css" | tr -d ' ')
grep -q '<head>' "$WORK/www/form.html" || die "test page has no <head>"
if grep -q "$TAG_MATCH\|rr-block\|rr-mask" "$WORK/www/form.html"; then die "test page already carries Loupe's marks"; fi

ORIGIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
SUBFILTER_PORT=$(free_port)
LOUPE_PORT=$(free_port)
LOUPE_ADMIN_PORT=$(free_port)
NOARCH_PORT=$(free_port)
NOARCH_ADMIN_PORT=$(free_port)

# 1. The one static origin. gzip off: every body is identity, so nothing is
#    decompressed or recompressed anywhere.
start_nginx origin "$ORIGIN_PORT" "
	server {
		listen 127.0.0.1:$ORIGIN_PORT;
		root $WORK/www;
		sendfile on;
		tcp_nopush on;
		gzip off;
		location / { }
		# The same files, sent like a slow origin streaming its page: the
		# first 32 KB at once, then 4 MB/s.
		location /slow/ {
			alias $WORK/www/;
			limit_rate_after 32k;
			limit_rate 4m;
		}
	}"

# 2. nginx in front: plain proxy_pass, then proxy_pass + sub_filter.
start_nginx nginx-proxy "$PROXY_PORT" "$(proxy_block "$PROXY_PORT" "")"
start_nginx nginx-subfilter "$SUBFILTER_PORT" "$(proxy_block "$SUBFILTER_PORT" "
			proxy_set_header Accept-Encoding \"\";
			sub_filter '<head>' '<head>$TAG';
			sub_filter_once on;")"

# 3. Loupe in front, with a throwaway data folder: once as it ships (asset
#    archive on), once with --archive=false (own ports, own data folder),
#    both from the same binary.
LOUPE_SECRET=${LOUPE_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export LOUPE_SECRET
"$WORK/loupe/loupe" serve --upstream "http://127.0.0.1:$ORIGIN_PORT" \
	--listen "127.0.0.1:$LOUPE_PORT" --admin "127.0.0.1:$LOUPE_ADMIN_PORT" \
	--data "$WORK/loupe/data" </dev/null >"$WORK/loupe/loupe.log" 2>&1 &
PIDS+=($!)
PID_loupe=$!
wait_http "http://127.0.0.1:$LOUPE_PORT/__loupe/healthz" loupe "$PID_loupe"
"$WORK/loupe/loupe" serve --archive=false --upstream "http://127.0.0.1:$ORIGIN_PORT" \
	--listen "127.0.0.1:$NOARCH_PORT" --admin "127.0.0.1:$NOARCH_ADMIN_PORT" \
	--data "$WORK/loupe-noarchive/data" </dev/null >"$WORK/loupe-noarchive/loupe.log" 2>&1 &
PIDS+=($!)
PID_loupe_noarchive=$!
wait_http "http://127.0.0.1:$NOARCH_PORT/__loupe/healthz" loupe-noarchive "$PID_loupe_noarchive"

# ---------------------------------------------------------------- checks
# Each front end must do what it claims, in this run, or nothing is measured.

for t in "${TARGETS[@]}"; do
	body="$WORK/check-$t.html"
	hdrs="$WORK/check-$t.headers"
	code=$(curl -sS -D "$hdrs" -o "$body" -w '%{http_code}' "$(url_of "$t" page)")
	[ "$code" = 200 ] || die "$t: page answered $code"
	n=$({ grep -o "$TAG_MATCH" "$body" || true; } | wc -l | tr -d " ")
	case $t in
	origin | nginx-proxy)
		[ "$n" = 0 ] || die "$t: page carries the recorder tag, it must not"
		cmp -s "$body" "$WORK/www/form.html" || die "$t: page differs from the origin's bytes"
		;;
	nginx-subfilter)
		[ "$n" = 1 ] || die "$t: page carries the recorder tag $n times, want 1"
		grep -qF "<head>$TAG" "$body" || die "$t: tag not right after <head>"
		;;
	loupe | loupe-noarchive)
		[ "$n" = 1 ] || die "$t: page carries the recorder tag $n times, want 1"
		grep -q 'rr-block' "$body" || die "$t: no form field marked rr-block"
		grep -qi '^set-cookie: __loupe_sid=' "$hdrs" || die "$t: no session cookie set"
		;;
	esac
	asset="$WORK/check-$t.css"
	code=$(curl -sS -o "$asset" -w '%{http_code}' "$(url_of "$t" asset)")
	[ "$code" = 200 ] || die "$t: asset answered $code"
	cmp -s "$asset" "$WORK/www/style.css" || die "$t: asset differs from the origin's bytes"
	eval "BYTES_${t//-/_}=$(wc -c <"$body" | tr -d ' ')"
done
src=$(grep -o -m 1 "$TAG_MATCH[^\"]*" "$WORK/check-loupe.html" | sed -e "s/^src=\"//" -e "s/&amp;/\\&/g")
code=$(curl -sS -o "$WORK/recorder.js" -w "%{http_code}" "http://127.0.0.1:$LOUPE_PORT$src")
[ "$code" = 200 ] || die "loupe: $src answered $code"
# The size reported is the bundle Loupe actually serves (the one embedded in
# $LOUPE_BIN); $RECORDER should be the same file unless it was rebuilt since.
[ -s "$WORK/recorder.js" ] || die "loupe serves an empty recorder.js"
cmp -s "$WORK/recorder.js" "$RECORDER" ||
	log "warning: $RECORDER differs from the bundle in $LOUPE_BIN (rebuilt since?); reporting the served one"
# The archive on one side, and only there: the stylesheet fetched above is in
# the archive-on Loupe's store and the archive-off one has none (checked with
# sqlite3 when it is installed; the capture is stored in the background).
ARCHIVE_CHECK="not checked (no sqlite3)"
if command -v sqlite3 >/dev/null 2>&1; then
	n=0
	for i in $(seq 1 50); do
		n=$(sqlite3 "file:$WORK/loupe/data/loupe.db?mode=ro" \
			"SELECT count(*) FROM asset_captures WHERE url LIKE '%/style.css'" 2>/dev/null || echo 0)
		[ "$n" -gt 0 ] && break
		sleep 0.1
	done
	[ "$n" -gt 0 ] || die "loupe: style.css was not archived with the archive on"
	m=$(sqlite3 "file:$WORK/loupe-noarchive/data/loupe.db?mode=ro" "SELECT count(*) FROM asset_captures" 2>/dev/null || echo 0)
	[ "$m" = 0 ] || die "loupe-noarchive: $m assets archived with --archive=false"
	ARCHIVE_CHECK="style.css archived by Loupe (archive on), nothing by Loupe (--archive=false)"
	log "archive: $ARCHIVE_CHECK"
fi
RECORDER_GZ=$(gzip -9 -c "$WORK/recorder.js" | wc -c | tr -d " ")
RECORDER_RAW=$(wc -c <"$WORK/recorder.js" | tr -d " ")
log "checks passed: origin and proxy_pass pass the page unchanged; sub_filter and both Loupes inject the tag once; assets identical"
log "page bytes out: origin $BYTES_origin, nginx-proxy $BYTES_nginx_proxy, nginx-subfilter $BYTES_nginx_subfilter, loupe $BYTES_loupe, loupe-noarchive $BYTES_loupe_noarchive"

# ---------------------------------------------------------------- measure

for t in "${TARGETS[@]}"; do
	for c in "${CONTENTS[@]}"; do
		wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$(url_of "$t" "$c")" >/dev/null 2>&1 ||
			die "warm-up failed against $t $c"
	done
done
log "warmed up (${WARMUP}s per target and content)"

RAW="$WORK/raw.tsv"
: >"$RAW"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order of front ends each round so none always runs first.
	order=()
	for i in "${!TARGETS[@]}"; do
		order+=("${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}")
	done
	for c in "${CONTENTS[@]}"; do
		for t in "${order[@]}"; do measure "$r" load "$t" "$c"; done
	done
	if [ "$LAT_DURATION" -gt 0 ]; then
		for c in "${CONTENTS[@]}"; do
			for t in "${order[@]}"; do measure "$r" c1 "$t" "$c"; done
		done
	fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- TTFB

# ttfb_once url prints the time to the first byte of the body, in ms.
ttfb_once() {
	curl -sS -o /dev/null -w '%{time_starttransfer}\n' "$1" | awk '{ printf "%.3f\n", $1 * 1000 }'
}

TTFB="$RESULTS/ttfb.tsv"
printf 'page\ttarget\trun\tttfb_ms\n' >"$TTFB"
if [ "$TTFB_RUNS" -gt 0 ]; then
	# Loupe must stream the large page whole, with the tag, at both speeds.
	for path in big.html slow/big.html; do
		curl -sS -o "$WORK/check-big.html" "http://127.0.0.1:$LOUPE_PORT/$path"
		n=$({ grep -o "$TAG_MATCH" "$WORK/check-big.html" || true; } | wc -l | tr -d " ")
		[ "$n" = 1 ] || die "loupe: /$path carries the recorder tag $n times, want 1"
		[ "$(grep -c '</fieldset>' "$WORK/check-big.html")" = "$(grep -c '</fieldset>' "$WORK/www/big.html")" ] ||
			die "loupe: /$path lost content"
	done
	for path in big.html slow/big.html; do
		for t in origin loupe; do
			port=$ORIGIN_PORT
			[ "$t" = loupe ] && port=$LOUPE_PORT
			for i in $(seq 1 "$TTFB_RUNS"); do
				v=$(ttfb_once "http://127.0.0.1:$port/$path") || die "TTFB request to $t /$path failed"
				printf '%s\t%s\t%s\t%s\n' "$path" "$t" "$i" "$v" >>"$TTFB"
			done
			log "ttfb $(printf '%-14s %-7s' "$path" "$t") median $(awk -F'\t' -v p="$path" -v t="$t" '$1 == p && $2 == t { print $4 }' "$TTFB" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }') ms"
		done
	done
fi

# Stop the archive-on Loupe now: on shutdown it logs its archive counters
# (captures stored, new bodies, dropped on a full queue, failures).
kill -TERM "$PID_loupe" 2>/dev/null || true
wait "$PID_loupe" 2>/dev/null || true
ARCHIVE_STATS=$(grep -m 1 'msg=archive' "$WORK/loupe/loupe.log" | sed -e 's/^.*msg=archive *//' || true)

# ---------------------------------------------------------------- report

GO_V=$(go version 2>/dev/null | awk '{print $3}' || true)
GO_BUILT=$(go version "$LOUPE_BIN" 2>/dev/null | awk '{print $2}' || true)
NGINX_VER=$(nginx -v 2>&1 | sed 's/^nginx version: //')
WRK_VER=$(wrk --version 2>&1 | awk 'NR == 1 {print $2}' || true)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)

# Medians over rounds, per mode, target and content.
MED="$WORK/median.tsv"
awk -F'\t' '
	function median(key, col,   n, i, j, v, a) {
		n = cnt[key]
		for (i = 1; i <= n; i++) a[i] = val[key, i, col]
		for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		key = $2 "\t" $3 "\t" $4
		if (!(key in cnt)) order[++keys] = key
		cnt[key]++
		for (c = 5; c <= 10; c++) val[key, cnt[key], c] = $c
	}
	END {
		for (k = 1; k <= keys; k++) {
			key = order[k]
			printf "median\t%s\t%.2f\t%.3f\t%.3f\t%.1f\t%d\t%d\n", key, median(key, 5), median(key, 6), median(key, 7), median(key, 8), median(key, 9), median(key, 10)
		}
	}' "$RAW" >"$MED"

{
	printf '# Loupe proxy benchmark, %s. commit %s; %s; nginx %s; wrk %s; %s CPUs (%s); load average %s at start, %s at end\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$COMMIT" "${GO_BUILT:-$GO_V}" "$NGINX_VER" "$WRK_VER" "$(nproc)" "$CPU_MODEL" "$LOAD_START" "$LOAD_END"
	printf '# load: wrk -t%s -c%s -d%ss --latency; c1: wrk -t1 -c1 -d%ss --latency; %s rounds; page %s B, asset %s B; recorder.js %s B, %s B gzip -9\n' \
		"$THREADS" "$CONNS" "$DURATION" "$LAT_DURATION" "$ROUNDS" "$PAGE_BYTES" "$ASSET_BYTES" "$RECORDER_RAW" "$RECORDER_GZ"
	printf 'round\tmode\ttarget\tcontent\trequests_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\tsocket_errors\n'
	cat "$RAW" "$MED"
} >"$RESULTS/latest.tsv"

# table MODE prints the Markdown table of one mode, from the medians, with
# ratios and differences against nginx in the same run.
table() {
	awk -F'\t' -v mode="$1" '
	$2 == mode { rps[$3, $4] = $5; p50[$3, $4] = $6; p99[$3, $4] = $7; cpu[$3, $4] = $8; seen = 1 }
	function ratio(a, b) { return b > 0 ? sprintf("%.2f×", a / b) : "–" }
	function delta(a, b) { return sprintf("%+.2f", a - b) }
	END {
		if (!seen) exit
		name["origin"] = "origin direct (no proxy)"
		name["nginx-proxy"] = "nginx proxy_pass"
		name["nginx-subfilter"] = "nginx proxy_pass + sub_filter"
		name["loupe"] = "Loupe (archive on, default)"
		name["loupe-noarchive"] = "Loupe (--archive=false)"
		what["page"] = "50 KB HTML"
		what["asset"] = "20 KB CSS"
		nt = split("origin nginx-proxy nginx-subfilter loupe loupe-noarchive", T, " ")
		split("page asset", C, " ")
		print "| front end | content | req/s | req/s × proxy_pass | req/s × sub_filter | p50 ms | p99 ms | p50 − proxy_pass | p99 − proxy_pass | p99 − sub_filter | front-end CPU µs/req |"
		print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (c = 1; c <= 2; c++) for (t = 1; t <= nt; t++) {
			k1 = T[t]; k2 = C[c]
			vs_sub = (k1 ~ /^loupe/ && k2 == "page")
			printf "| %s | %s | %.0f | %s | %s | %.2f | %.2f | %s | %s | %s | %.0f |\n", name[k1], what[k2], rps[k1, k2],
				ratio(rps[k1, k2], rps["nginx-proxy", k2]),
				vs_sub ? ratio(rps[k1, k2], rps["nginx-subfilter", k2]) : "–",
				p50[k1, k2], p99[k1, k2],
				k1 == "nginx-proxy" ? "–" : delta(p50[k1, k2], p50["nginx-proxy", k2]),
				k1 == "nginx-proxy" ? "–" : delta(p99[k1, k2], p99["nginx-proxy", k2]),
				vs_sub ? delta(p99[k1, k2], p99["nginx-subfilter", k2]) : "–",
				cpu[k1, k2]
		}
	}' "$MED"
}

# goals prints the project's throughput goals, checked against the medians
# under load: Loupe injecting >= nginx sub_filter req/s on the page with p99
# within 1 ms of it; Loupe passing the asset through >= 0.9x proxy_pass.
goals() {
	awk -F'\t' '
	$2 == "load" { rps[$3, $4] = $5; p99[$3, $4] = $7 }
	function verdict(ok) { return ok ? "**met**" : "**not met**" }
	END {
		r = rps["loupe", "page"] / rps["nginx-subfilter", "page"]
		d = p99["loupe", "page"] - p99["nginx-subfilter", "page"]
		a = rps["loupe", "asset"] / rps["nginx-proxy", "asset"]
		printf "- Goal: Loupe injecting >= nginx sub_filter throughput on the 50 KB page: %.2f× — %s\n", r, verdict(r >= 1)
		printf "- Goal: Loupe injecting p99 within 1 ms of nginx sub_filter: %+.2f ms — %s\n", d, verdict(d <= 1)
		printf "- Goal: Loupe pass-through (20 KB CSS) >= 0.9× nginx proxy_pass: %.2f× — %s\n", a, verdict(a >= 0.9)
	}' "$MED"
}

# capture_cost prints the archive's cost: Loupe with the archive on (the
# default) against --archive=false, per mode and content, from the medians
# and from each round's pair (both run in the same round, a few seconds
# apart), with issue 4's goal: capture costs <= 5% of proxy throughput.
capture_cost() {
	awk -F'\t' '
	$1 != "median" && ($3 == "loupe" || $3 == "loupe-noarchive") { r[$1, $2, $3, $4] = $5; if ($1 > nr) nr = $1 }
	$1 == "median" { rps[$2, $3, $4] = $5; cpu[$2, $3, $4] = $8 }
	function cost(on, off) { return off > 0 ? sprintf("%+.1f%%", (off - on) / off * 100) : "–" }
	END {
		what["page"] = "50 KB HTML"; what["asset"] = "20 KB CSS"
		mname["load"] = "load"; mname["c1"] = "1 conn"
		print "| wrk | content | req/s archive on | req/s archive off | throughput cost (off − on) ÷ off | cost per round | CPU µs/req on | CPU µs/req off | CPU Δ µs/req |"
		print "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
		split("load c1", M, " "); split("asset page", C, " ")
		for (m = 1; m <= 2; m++) for (c = 1; c <= 2; c++) {
			mo = M[m]; co = C[c]
			if (!((mo, "loupe", co) in rps)) continue
			per = ""
			for (i = 1; i <= nr; i++) per = per (i > 1 ? " / " : "") cost(r[i, mo, "loupe", co], r[i, mo, "loupe-noarchive", co])
			on = rps[mo, "loupe", co]; off = rps[mo, "loupe-noarchive", co]
			printf "| %s | %s | %.0f | %.0f | %s | %s | %.0f | %.0f | %+.0f |\n", mname[mo], what[co], on, off, cost(on, off), per,
				cpu[mo, "loupe", co], cpu[mo, "loupe-noarchive", co], cpu[mo, "loupe", co] - cpu[mo, "loupe-noarchive", co]
		}
		on = rps["load", "loupe", "asset"]; off = rps["load", "loupe-noarchive", "asset"]
		c = (off - on) / off * 100
		printf "\n- Goal (issue 4): asset capture costs <= 5%% of proxy throughput (20 KB CSS, under load, medians): %+.1f%% — %s\n", c, c <= 5 ? "**met**" : "**not met**"
	}' "$RAW" "$MED"
}

# ttfb_table prints the TTFB medians, direct and through Loupe, and the
# goal: Loupe within 5 ms of direct.
ttfb_table() {
	awk -F'\t' '
	NR > 1 { n[$1, $2]++; v[$1, $2, n[$1, $2]] = $4 }
	function median(p, t,   i, j, x, a, k) {
		k = n[p, t]
		for (i = 1; i <= k; i++) a[i] = v[p, t, i]
		for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	END {
		what["big.html"] = "served at full speed"
		what["slow/big.html"] = "origin trickling at 4 MB/s after 32 KB"
		print "| page | origin direct | Loupe | Loupe − direct |"
		print "| --- | ---: | ---: | ---: |"
		worst = 0
		split("big.html slow/big.html", P, " ")
		for (i = 1; i <= 2; i++) {
			o = median(P[i], "origin"); l = median(P[i], "loupe")
			printf "| %s | %.2f | %.2f | %+.2f |\n", what[P[i]], o, l, l - o
			if (l - o > worst) worst = l - o
		}
		printf "\n- Goal: time to first byte on a large streamed page within 5 ms of direct: %+.2f ms at worst — %s\n", worst, worst <= 5 ? "**met**" : "**not met**"
	}' "$TTFB"
}

# spread prints requests/s under load of every round, per target.
spread() {
	awk -F'\t' '
	$2 == "load" { v[$1, $3, $4] = $5; if ($1 > nr) nr = $1 }
	END {
		nt = split("origin nginx-proxy nginx-subfilter loupe loupe-noarchive", T, " ")
		print "| | origin | nginx proxy_pass | nginx sub_filter | Loupe (archive on) | Loupe (archive off) |"
		print "| --- | ---: | ---: | ---: | ---: | ---: |"
		split("page asset", C, " "); what["page"] = "50 KB HTML"; what["asset"] = "20 KB CSS"
		for (c = 1; c <= 2; c++) {
			line = "| " what[C[c]]
			for (t = 1; t <= nt; t++) {
				cell = ""
				for (i = 1; i <= nr; i++) cell = cell (i > 1 ? " / " : "") sprintf("%.0f", v[i, T[t], C[c]])
				line = line " | " cell
			}
			print line " |"
		}
	}' "$RAW"
}

{
	echo "Loupe proxy benchmark — median of $ROUNDS rounds, same machine, same run."
	echo "commit $COMMIT; ${GO_BUILT:-$GO_V}; nginx $NGINX_VER; wrk $WRK_VER; $(nproc) CPUs; load average $LOAD_START at start, $LOAD_END at end."
	echo
	echo "Under load: wrk -t$THREADS -c$CONNS -d${DURATION}s (closed loop; wrk, origin and front end share the CPUs)."
	echo
	table load
	if [ "$LAT_DURATION" -gt 0 ]; then
		echo
		echo "One connection: wrk -t1 -c1 -d${LAT_DURATION}s (latency without queueing)."
		echo
		table c1
	fi
	echo
	goals
	echo
	echo "p50/p99 differences are in ms. Recorder bundle: $RECORDER_RAW bytes, $RECORDER_GZ bytes with gzip -9."
	echo "Page bytes sent: origin $BYTES_origin, nginx-proxy $BYTES_nginx_proxy, nginx-subfilter $BYTES_nginx_subfilter, Loupe $BYTES_loupe, Loupe (--archive=false) $BYTES_loupe_noarchive."
	echo "Per-round figures: bench/results/latest.tsv."
	echo
	echo "Under load, requests/s per round (round 1 / 2 / 3; the order of front ends rotates):"
	echo
	spread
	echo
	if [ "$TTFB_RUNS" -gt 0 ]; then
		echo "Time to first byte of a $BIG_BYTES-byte page, median of $TTFB_RUNS requests (curl, one at a time; ms):"
		echo
		ttfb_table
		echo
	fi
	echo "Asset capture cost: the same Loupe binary with the archive on (the default) and with --archive=false."
	echo "With the archive on, every CSS response is tee'd into a buffer and queued; after the first capture the"
	echo "archiver recognizes the unchanged body from its recent-captures cache (an xxhash of the body) and stores"
	echo "nothing: repeated GETs of one stylesheet measure that dedup path, the realistic steady state. HTML pages"
	echo "are not archived, so the page rows are a control. Archive check: $ARCHIVE_CHECK."
	[ -n "${ARCHIVE_STATS:-}" ] && echo "Archive counters at shutdown (archive on): $ARCHIVE_STATS."
	echo
	capture_cost
} | tee "$RESULTS/latest.md"
