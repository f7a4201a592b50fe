#!/usr/bin/env bash
# datahub-admin against real situations made by tests/admin_scenario:
# a healthy block, a consumer killed holding slots, a producer killed
# mid-write, a foreign object; each command's output and exit code.
set -u
admin=$1
scenario=$2
swap_shim=$3
ch="admintest-$$"
evil="/dev/shm/dh-evil-$$"$'\e[2J\e]0;pwned\a\r'
pids=()
fails=0
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -f "/dev/shm/datahub.$ch" "/dev/shm/datahub.$ch.new" "/dev/shm/dh-foreign-$$" \
    "/dev/shm/dh-fifo-$$" "$evil"
}
trap cleanup EXIT

check() { # check DESCRIPTION EXPECTED_EXIT GREP_PATTERN -- COMMAND...
  local what=$1 want=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $what (exit $rc, want $want; pattern '$pattern')"
    echo "$out" | sed 's/^/    /'
    fails=$((fails + 1))
  else
    echo "ok: $what"
  fi
}

wait_line() { # wait_line FILE TEXT
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# 1. a healthy block with a live producer and a consumer
out=$(mktemp)
"$scenario" produce "$ch" >"$out" & producer=$!; pids+=($producer)
wait_line "$out" ready
"$scenario" hold "$ch" >"$out.c" & holder=$!; pids+=($holder)
wait_line "$out.c" holding
check "list shows the block" 0 "$ch +/datahub.$ch +[0-9]+ alive +1/0" -- "$admin" list
check "list --json" 0 "\"shm_name\" : \"/datahub.$ch\"" -- "$admin" list --json
check "status" 0 "consumers \(1 alive, 0 dead\)" -- "$admin" status "$ch"
check "validate healthy" 0 "healthy \(0 findings\)" -- "$admin" validate "$ch"
check "metrics text" 0 "slots_written +5" -- "$admin" metrics "$ch"
check "metrics json" 0 "\"slots_written\" : 5" -- "$admin" metrics "$ch" --json
check "metrics prometheus" 0 "datahub_slots_written\{channel=\"$ch\"\} 5" -- "$admin" metrics "$ch" --prometheus
check "watch one refresh" 0 "consumers 1 alive" -- "$admin" watch "$ch" -i 100 -n 1
check "unlink refused while the producer lives" 6 "alive; use --force" -- "$admin" unlink "$ch"
check "reset-slot refused while the producer lives" 6 "producer of /datahub.$ch .* is alive" -- "$admin" reset-slot "$ch" 1
check "diagnose shows the holder" 0 "holders 0000000000000001" -- "$admin" diagnose "$ch"
# slot indexes are 32-bit: 2^32 must not wrap to slot 0 of the live block
check "reset-slot index beyond 32 bits" 2 "out of range" -- "$admin" reset-slot "$ch" 4294967296
check "reset-slot index of 2^64" 2 "out of range" -- "$admin" reset-slot "$ch" 18446744073709551616
check "reset-slot negative index" 2 "Unknown option -1|not a number" -- "$admin" reset-slot "$ch" -1
check "reset-slot index with a sign" 2 "not a number" -- "$admin" reset-slot "$ch" +0
check "reset-slot index past the slots" 2 "has 4 slots: there is no slot 4" -- "$admin" reset-slot "$ch" 4
check "nothing was reset" 0 "recovery_actions +0" -- "$admin" metrics "$ch"
# a hostile name in /dev/shm (a copy of the live block): shown escaped
cp "/dev/shm/datahub.$ch" "$evil"
no_raw_controls() { # no_raw_controls DESCRIPTION -- COMMAND...: no control bytes but newlines
  local what=$1
  shift 2
  if "$@" 2>&1 | LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]'; then
    echo "FAIL: $what printed raw control bytes"
    fails=$((fails + 1))
  else
    echo "ok: $what"
  fi
}
no_raw_controls "list escapes hostile names" -- "$admin" list
check "list shows the escaped name" 0 'dh-evil-[0-9]+\\x1b\[2J\\x1b\]0;pwned\\x07\\x0d' -- "$admin" list
no_raw_controls "list --json escapes hostile names" -- "$admin" list --json
no_raw_controls "status escapes hostile names" -- "$admin" status "${evil#/dev/shm}"
rm -f "$evil"

# 2. the consumer dies holding two slots.  A live producer removes its
# object within 100 ms by itself: stop the producer to see what an
# operator sees when nobody repairs.
kill -STOP "$producer"
kill -9 "$holder"; wait "$holder" 2>/dev/null
check "validate sees the dead consumer" 1 "consumer 0 \(pid [0-9]+\) is dead" -- "$admin" validate "$ch"
check "diagnose shows dead holders" 1 "dead holders 0000000000000001" -- "$admin" diagnose "$ch"
check "auto-recover dry run" 0 "would remove dead consumer 0 \\(pid [0-9]+\\) and its holds" -- "$admin" auto-recover "$ch"
check "still unhealthy after a dry run" 1 "UNHEALTHY" -- "$admin" validate "$ch"
check "auto-recover --apply" 0 "removed dead consumer 0" -- "$admin" auto-recover "$ch" --apply
check "healthy again" 0 "healthy" -- "$admin" validate "$ch"
kill -CONT "$producer"
check "recovery counted in metrics" 0 "recovery_actions +[1-9]" -- "$admin" metrics "$ch"
check "metrics --reset" 0 "slots_written" -- "$admin" metrics "$ch" --reset
check "counters are zero after reset" 0 "slots_written +0" -- "$admin" metrics "$ch"
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=()
rm -f "/dev/shm/datahub.$ch"

# 2b. a live consumer that stops reading holds a lossless producer back:
# a moment is normal, a second is a finding
"$scenario" stream "$ch" >"$out" & producer=$!; pids+=($producer)
wait_line "$out" ready
"$scenario" hold "$ch" >"$out.c" & holder=$!; pids+=($holder)
wait_line "$out.c" holding
sleep 1.5
check "status shows whom the producer waits for" 0 "waits for it now" -- "$admin" status "$ch"
check "validate reports the consumer holding it back" 1 "consumer 0 \(pid [0-9]+\) has held the producer back for" -- "$admin" validate "$ch"
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=()
rm -f /dev/shm/datahub."$ch"*

# 3. the producer dies between acquire and commit
"$scenario" die-writing "$ch"
check "validate: dead producer, stuck WRITING slot" 1 "slot [0-9]+ is WRITING .* producer is dead" -- "$admin" validate "$ch"
check "reset-slot of a dead writer's slot" 0 "reset to FREE" -- "$admin" reset-slot "$ch" 3
check "auto-recover finds nothing left to repair" 0 "0 actions" -- "$admin" auto-recover "$ch" --apply
check "unlink a dead producer's block" 0 "unlinked" -- "$admin" unlink "$ch"
if ls /dev/shm | grep -q "^datahub.$ch"; then
  echo "FAIL: unlink left $(ls /dev/shm | grep "^datahub.$ch")"
  fails=$((fails + 1))
else
  echo "ok: unlink removed the channel's exchange object too"
fi
check "gone" 3 "No such file" -- "$admin" status "$ch"

# 3b. what is left when the block is gone: a killed consumer's object and
# the exchange object; list names the channel, cleanup removes them
"$scenario" produce "$ch" >"$out" & producer=$!; pids+=($producer)
wait_line "$out" ready
"$scenario" hold "$ch" >"$out.c" & holder=$!; pids+=($holder)
wait_line "$out.c" holding
kill -STOP "$producer"   # no producer service: nobody reclaims
kill -9 "$holder"; wait "$holder" 2>/dev/null
kill -9 "$producer"; wait "$producer" 2>/dev/null
pids=()
rm -f "/dev/shm/datahub.$ch"   # the block went (someone removed it)
check "list names what was left" 0 "left without a block" -- "$admin" list
check "cleanup without a block" 0 "no block; removed 2 objects" -- "$admin" cleanup "$ch"
if ls /dev/shm | grep -q "^datahub.$ch"; then
  echo "FAIL: cleanup left $(ls /dev/shm | grep "^datahub.$ch")"
  fails=$((fails + 1))
else
  echo "ok: nothing of the channel is left"
fi

# 4. bad input
printf 'GARBAGE!' > "/dev/shm/dh-foreign-$$"
truncate -s 8192 "/dev/shm/dh-foreign-$$"
check "a foreign object is refused" 5 "not a datahub block" -- "$admin" status "/dh-foreign-$$"
check "unknown command" 2 "unknown command" -- "$admin" frobnicate "$ch"
mkfifo "/dev/shm/dh-fifo-$$"
check "unlink refuses a FIFO without --force (and does not hang on it)" 5 "not a regular file" -- \
  timeout 10 "$admin" unlink "/dh-fifo-$$"
rm -f "/dev/shm/dh-fifo-$$"

# 5. unlink removes what it checked, not what replaced it meanwhile
"$scenario" die-writing "$ch"
cp "/dev/shm/datahub.$ch" "/dev/shm/datahub.$ch.new"
replacement=$(stat -c %i "/dev/shm/datahub.$ch.new")
# the shim renames .new over the name right after the admin's check
check "unlink refused when the name was re-created during the check" 6 "was replaced" -- \
  env DATAHUB_TEST_SWAP="/dev/shm/datahub.$ch.new:/dev/shm/datahub.$ch" LD_PRELOAD="$swap_shim" \
  ASAN_OPTIONS=verify_asan_link_order=0 "$admin" unlink "$ch"
if [ "$(stat -c %i "/dev/shm/datahub.$ch" 2>/dev/null)" = "$replacement" ]; then
  echo "ok: the new block survived"
else
  echo "FAIL: the block that replaced the checked one is gone"
  fails=$((fails + 1))
fi
check "unlink of the (dead) replacement" 0 "unlinked" -- "$admin" unlink "$ch"
check "slot index must be a number" 2 "not a number" -- "$admin" reset-slot "/dh-foreign-$$" x

echo "$fails failed checks"
[ "$fails" -eq 0 ]
