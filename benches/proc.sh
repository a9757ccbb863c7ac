# benches/proc.sh: facts about a process from /proc, and small helpers the
# benchmark scripts share. Sourced from the repository root, not run: `. benches/proc.sh`.

# user + system CPU in clock ticks; the fields after the `(comm)` one, so a
# command name with spaces or parentheses cannot shift them.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
open_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
fd_limit() { awk '/^Max open files/ { print $4 }' "/proc/$1/limits"; }

# A number field of a one-line JSON report: `json_field requests FILE`.
json_field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2"; }

# A loopback port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening_ports FILE: waits (up to 5 s) for a server's complete
# `listening control=127.0.0.1:P http=127.0.0.1:Q` line in FILE and prints
# "P Q"; prints nothing if it never came.
listening_ports() {
    local line ctl http attempt
    for attempt in $(seq 50); do
        # Both ports from one complete line: the file may hold half of it.
        line=$(grep -m 1 '^listening control=.* http=.*' "$1" || true)
        ctl=$(sed -n 's/^listening control=127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
        http=$(sed -n 's/.* http=127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
        if [[ -n $ctl && -n $http ]]; then
            echo "$ctl $http"
            return
        fi
        sleep 0.1
    done
}
