#!/usr/bin/env python3
"""Drives Rampart's Kubernetes listener with the official `kubernetes` Python client (part of
the protocol-CONTRACT test, not a cluster test): lists pods, reads a pod, runs an exec over the
client's WebSocket stream, forwards a port (v4.channel.k8s.io) to the fake pod's echo. Prints one JSON object with what it saw.

Usage: python_client.py KUBECONFIG
"""

import json
import sys

from kubernetes import client, config
from kubernetes.stream import portforward, stream

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
pods = api.list_namespaced_pod("default")
pod = api.read_namespaced_pod("web-0", "default")
output = stream(api.connect_get_namespaced_pod_exec, "web-0", "default",
                command=["echo", "from", "python"], stderr=True, stdin=False, stdout=True,
                tty=False)
forward = portforward(api.connect_get_namespaced_pod_portforward, "web-0", "default",
                      ports="8080")
sock = forward.socket(8080)
sock.sendall(b"from-python-forward")
got = b""
while b"from-python-forward" not in got:
    chunk = sock.recv(1024)
    if not chunk:
        break
    got += chunk
sock.close()
print(json.dumps({
    "pods": [p.metadata.name for p in pods.items],
    "phase": pod.status.phase,
    "exec": output,
    "forwarded": got.decode(errors="replace"),
}))
