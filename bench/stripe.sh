# The Stripe inbound-webhook cases of bench/run (sourced by it; see bench/README.md):
# stripe-webhooks (ingestion, open loop) and stripe-webhooks-crash (kill -9 during 10,000).
# They use bench/run's machinery (say, die, free_port, wait_ready, start_baseline, meets, ...).
# shellcheck shell=bash disable=SC2317

STRIPE_RATE=${BENCH_STRIPE_RATE:-5000}                      # events/s of the target runs
STRIPE_CAPACITY_RATE=${BENCH_STRIPE_CAPACITY_RATE:-8000}    # events/s offered by the capacity runs (above either server)
STRIPE_CAPACITY_SECONDS=${BENCH_STRIPE_CAPACITY_SECONDS:-5} # seconds counted per capacity run
STRIPE_P99=${BENCH_STRIPE_P99:-50}                          # ms, payymo's p99 at STRIPE_RATE
CRASH_EVENTS=${BENCH_CRASH_EVENTS:-10000}                   # payments made and delivered by stripe-webhooks-crash
STRIPE_BIN=$TARGET_DIR/release/examples/bench-stripe-webhooks

STRIPE_SIM_PID=""       # payymo sandbox --only stripe, for stripe-webhooks
STRIPE_SIM_ADDR=""
STRIPE_PAYYMO_PID=""    # the payymo serve stripe-webhooks measures (its own data dir and cluster)
STRIPE_PAYYMO_ADDR=""
STRIPE_TENANT=""
STRIPE_CONNECTION=""
STRIPE_SECRET=""
STRIPE_DB_URL=""
STRIPE_ROWS=()          # rows of the stripe-webhooks open-loop table

# Inbound Stripe webhooks, open loop (bench/stripe_webhooks/, the bench-stripe-webhooks example):
# distinct signed charge.succeeded events at a fixed rate to payymo serve and to bench-baseline
# stripe-webhooks (verify + the same insert on a plain pool), BENCH_RUNS alternating runs each at
# BENCH_STRIPE_RATE (latency and sustained rate) and at BENCH_STRIPE_CAPACITY_RATE (saturated:
# the throughput of each, and their ratio).
case_stripe_webhooks() {
    ensure_stripe
    start_baseline stripe-webhooks "$STRIPE_DB_URL" "$STRIPE_TENANT" "$STRIPE_CONNECTION" "$STRIPE_SECRET"
    local path=/api/v1/stripe/webhooks/$STRIPE_CONNECTION run p_runs="" b_runs="" p_cap="" b_cap=""
    local -a p b pc bc
    for ((run = 1; run <= RUNS; run++)); do
        p_runs+="$(stripe_open "$STRIPE_PAYYMO_ADDR" payymo "$STRIPE_RATE" "$DURATION" "$run")"$'\n'
        b_runs+="$(stripe_open "$BASELINE_ADDR" baseline "$STRIPE_RATE" "$DURATION" "$run")"$'\n'
    done
    for ((run = 1; run <= RUNS; run++)); do
        p_cap+="$(stripe_open "$STRIPE_PAYYMO_ADDR" payymo "$STRIPE_CAPACITY_RATE" "$STRIPE_CAPACITY_SECONDS" "$run" capacity)"$'\n'
        b_cap+="$(stripe_open "$BASELINE_ADDR" baseline "$STRIPE_CAPACITY_RATE" "$STRIPE_CAPACITY_SECONDS" "$run" capacity)"$'\n'
    done
    stop_baseline
    say "stripe-webhooks at $STRIPE_RATE/s (req/s p50 p99 p99.9): payymo $(open_runs_line "$p_runs"); baseline $(open_runs_line "$b_runs")"
    say "stripe-webhooks at $STRIPE_CAPACITY_RATE/s offered (req/s): payymo $(awk 'NF { printf "%s%.0f", (n++ ? ", " : ""), $1 }' <<<"$p_cap"); baseline $(awk 'NF { printf "%s%.0f", (n++ ? ", " : ""), $1 }' <<<"$b_cap")"
    read -r -a p <<<"$(open_medians "$p_runs")"
    read -r -a b <<<"$(open_medians "$b_runs")"
    read -r -a pc <<<"$(open_medians "$p_cap")"
    read -r -a bc <<<"$(open_medians "$b_cap")"
    local sustained ratio verdicts problems=-
    sustained=$(awk -v r="$STRIPE_RATE" 'BEGIN { print r * 0.99 }')
    verdicts="$(printf '>= %s/s sustained %s, p99 <= %s ms %s' "$STRIPE_RATE" "$(meets "${p[0]}" '>=' "$sustained")" \
        "$STRIPE_P99" "$(meets "${p[2]}" '<=' "$STRIPE_P99")")"
    [[ ${p[4]} != - ]] && problems="payymo ${p[4]//_/ }"
    [[ ${b[4]} != - ]] && problems="${problems#-} baseline ${b[4]//_/ }"
    [[ $problems != - ]] && verdicts="ERROR ($problems)"
    STRIPE_ROWS+=("$(printf '%-22s %7d | %8.0f %7.2f %7.2f %8.2f | %8.0f %7.2f %7.2f %8.2f | %s' "at the target rate" \
        "$STRIPE_RATE" "${p[0]}" "${p[1]}" "${p[2]}" "${p[3]}" "${b[0]}" "${b[1]}" "${b[2]}" "${b[3]}" "$verdicts")")
    ratio=$(awk -v p="${pc[0]}" -v b="${bc[0]}" 'BEGIN { printf "%.2f", (b > 0 ? p / b : 0) }')
    # Saturated, the latencies only say how long the queue grew: not shown.
    STRIPE_ROWS+=("$(printf '%-22s %7d | %8.0f %7s %7s %8s | %8.0f %7s %7s %8s | %s' "saturated (capacity)" \
        "$STRIPE_CAPACITY_RATE" "${pc[0]}" - - - "${bc[0]}" - - - "ratio $ratio >= 0.50 $(meets "$ratio" '>=' 0.50)")")
    if [[ $verdicts == ERROR* ]]; then
        STATUS=1
    elif [[ $STRICT == 1 && ${STRIPE_ROWS[*]} == *FAIL* ]]; then
        STATUS=1
    fi
    memory_row "stripe-webhooks, after" "$(rss_kb "$STRIPE_PAYYMO_PID")" 200
}

# One open-loop run of bench-stripe-webhooks against ADDR; prints "req/s p50 p99 p99.9 problems".
stripe_open() {
    local addr=$1 label=$2 rate=$3 seconds=$4 run=$5 mode=${6:-open}
    say "stripe-webhooks-$label: $mode, $rate events/s for ${seconds}s after ${WARMUP}s (run $run)"
    "$STRIPE_BIN" "$mode" "http://$addr$path" "$STRIPE_SECRET" "$rate" "$seconds" "$OPEN_CONNECTIONS" "$WARMUP" \
        2>>"$WORK/stripe-$label.log" || die "stripe-webhooks-$label: bench-stripe-webhooks failed; see $WORK/stripe-$label.log"
    [[ $VERBOSE == 1 ]] && tail -n 2 "$WORK/stripe-$label.log" >&2
    return 0
}

# Once: the Stripe simulator as its own process, a payymo serve of its own pointed at it (data in
# $WORK/data-stripe; PAYYMO_WORKERS=false: the instance that takes webhooks, the apply worker
# runs elsewhere), a test tenant with an API key (payymo's CLI), connected to the simulator's
# default account through the API, and the endpoint's signing secret from the simulator.
ensure_stripe() {
    [[ -n $STRIPE_SECRET ]] && return 0
    local data=$WORK/data-stripe out key
    mkdir -p "$data"
    free_port
    STRIPE_SIM_ADDR=$HOST:$PORT
    say "starting the Stripe simulator on $STRIPE_SIM_ADDR (payymo sandbox --only stripe)"
    (cd "$WORK" && exec env PAYYMO_LOG=warn "$PAYYMO_BIN" sandbox --only stripe --stripe-listen "$STRIPE_SIM_ADDR") \
        >"$WORK/stripe-sim.log" 2>&1 &
    STRIPE_SIM_PID=$!
    wait_ready "$STRIPE_SIM_PID" "$STRIPE_SIM_ADDR" "the Stripe simulator" "$WORK/stripe-sim.log" /_stripe/clock
    free_port
    STRIPE_PAYYMO_ADDR=$HOST:$PORT
    say "starting payymo on $STRIPE_PAYYMO_ADDR for stripe-webhooks (PAYYMO_WORKERS=false, data in $data)"
    (cd "$WORK" && exec env PAYYMO_LISTEN="$STRIPE_PAYYMO_ADDR" PAYYMO_DATA_DIR="$data" PAYYMO_LOG=warn \
        PAYYMO_LOG_FORMAT=text PAYYMO_SHUTDOWN_GRACE=5s PAYYMO_RATE_LIMITS="$RATE_LIMITS" PAYYMO_WORKERS=false \
        PAYYMO_STRIPE_SANDBOX_URL="http://$STRIPE_SIM_ADDR" "$PAYYMO_BIN" serve) >"$WORK/payymo-stripe.log" 2>&1 &
    STRIPE_PAYYMO_PID=$!
    wait_ready "$STRIPE_PAYYMO_PID" "$STRIPE_PAYYMO_ADDR" "payymo (stripe-webhooks)" "$WORK/payymo-stripe.log"
    out=$(payymo_cli_in "$data" tenant create --name bench-stripe --environment test --plan premium) ||
        die "payymo tenant create failed; its log: $(tail -n 5 "$WORK/cli.log")"
    STRIPE_TENANT=$(json_field id "$out")
    [[ $STRIPE_TENANT =~ ^ten_[0-9a-f]{32}$ ]] || die "payymo tenant create printed no tenant id: $out"
    out=$(payymo_cli_in "$data" api-key create --tenant "$STRIPE_TENANT" --label bench-stripe --scopes '*') ||
        die "payymo api-key create failed; its log: $(tail -n 5 "$WORK/cli.log")"
    key=$(json_field secret "$out")
    read -r _ STRIPE_CONNECTION STRIPE_SECRET < <("$STRIPE_BIN" connect "http://$STRIPE_PAYYMO_ADDR" "$key" "http://$STRIPE_SIM_ADDR") ||
        die "bench-stripe-webhooks connect failed"
    [[ $STRIPE_CONNECTION == sc_* && $STRIPE_SECRET == whsec_* ]] || die "no connection and secret from bench-stripe-webhooks connect"
    if [[ -n ${DATABASE_URL:-} ]]; then
        STRIPE_DB_URL=$DATABASE_URL
    else
        STRIPE_DB_URL="postgres://payymo@localhost/payymo?host=$(urlencode "$data/postgres/run")"
    fi
    say "tenant $STRIPE_TENANT connected to the simulator as $STRIPE_CONNECTION"
}

stop_stripe() {
    [[ -n $STRIPE_PAYYMO_PID ]] && stop_server "$STRIPE_PAYYMO_PID" "payymo (stripe-webhooks)"
    [[ -n $STRIPE_SIM_PID ]] && stop_server "$STRIPE_SIM_PID" "the Stripe simulator"
    STRIPE_PAYYMO_PID="" STRIPE_SIM_PID=""
}

# kill -9 of payymo serve while BENCH_CRASH_EVENTS webhooks arrive (bench-stripe-webhooks crash,
# which runs the simulator and payymo serve itself, in $WORK/data-stripe-crash). Its stdout is
# target-table rows; it exits non-zero on any loss or duplicate, which fails bench/run.
case_stripe_webhooks_crash() {
    local out line code=0
    mkdir -p "$WORK/data-stripe-crash"
    say "stripe-webhooks-crash: $CRASH_EVENTS payments, their events delivered, payymo serve killed with SIGKILL half-way"
    out=$("$STRIPE_BIN" crash "$PAYYMO_BIN" "$WORK/data-stripe-crash" "$CRASH_EVENTS") || code=$?
    while IFS= read -r line; do
        [[ -n $line ]] && TARGET_ROWS+=("$line")
    done <<<"$out"
    if ((code != 0)); then
        say "stripe-webhooks-crash: FAILED (exit $code); logs in $WORK/data-stripe-crash"
        TARGET_ROWS+=("$(printf '%-20s %-22s %s' stripe-webhooks-crash verdict "exit $code | FAIL")")
        STATUS=1
    fi
}

print_stripe_table() {
    ((${#STRIPE_ROWS[@]})) || return 0
    printf '\nstripe-webhooks: bench-stripe-webhooks open loop, distinct signed events, -c%s, %ss (capacity: %ss) after %ss, median of %s runs\n' \
        "$OPEN_CONNECTIONS" "$DURATION" "$STRIPE_CAPACITY_SECONDS" "$WARMUP" "$RUNS"
    printf '%-22s %7s | %8s %7s %7s %8s | %8s %7s %7s %8s | %s\n' run "offered" "payymo/s" "p50 ms" "p99 ms" "p99.9 ms" \
        "base/s" "p50 ms" "p99 ms" "p99.9 ms" "targets"
    printf '%s\n' "${STRIPE_ROWS[@]}"
}
