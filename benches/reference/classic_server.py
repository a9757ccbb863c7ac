#!/usr/bin/env python3
"""The classic thread-per-connection socket server, as a yardstick for camloop.

One OS thread per client: greet with a bare `Welcome`, answer every
recv(1024) with a bare `Received`, close on `exit`. Usage: classic_server.py PORT
"""
import socket
import sys
import threading


def serve(conn):
    with conn:
        try:
            conn.sendall(b"Welcome")
            while True:
                data = conn.recv(1024)
                if not data or data.strip() == b"exit":
                    return
                conn.sendall(b"Received")
        except OSError:  # reset or broken pipe: this client is gone
            return


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    # The classic example uses listen(5); a deep backlog keeps 1,000
    # simultaneous connects from stalling in SYN retries, so the comparison
    # measures serving, not the backlog.
    listener.listen(4096)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
