#!/usr/bin/env python3
"""What this project's manifests must get right and no generic validator checks.

Usage: check_invariants.py MANIFEST...   (each a rendered kustomize stream)

kubernetes-validate checks the shape of each object and checkov its security settings, but
neither knows that a PodDisruptionBudget without a selector protects nothing, that the host
listens on 127.0.0.1 unless told otherwise, or that its AOT cache refuses a world-writable
parent. Each rule below is one of those; every failure is printed, and the exit code is 1 if
there was any. `cargo xtask check-deploy` runs this on every overlay and on a negative fixture.
"""
import posixpath
import sys

import yaml


def selects(selector, labels):
    """A label selector (matchLabels only; an empty or missing one selects nothing here)."""
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def check_stream(docs, fail):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        fail(f"expected exactly one Deployment, found {len(deployments)}")
        return
    deployment = deployments[0]
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    spec = pod["spec"]

    if not selects(deployment["spec"].get("selector"), pod_labels):
        fail(f"Deployment/{name}: its selector does not match its own pod template")
    for kind, field in (("PodDisruptionBudget", "selector"), ("NetworkPolicy", "podSelector"),
                        ("Service", "selector")):
        for obj in by_kind.get(kind, []):
            selector = obj["spec"].get(field)
            if kind == "Service":
                selector = {"matchLabels": selector}
            if not selects(selector, pod_labels):
                fail(f"{kind}/{obj['metadata']['name']}: does not select the host's pods")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        if (target.get("kind"), target.get("name")) != ("Deployment", name):
            fail(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: does not scale Deployment/{name}")
    services = by_kind.get("Service", [])
    for monitor in by_kind.get("ServiceMonitor", []):
        if not any(selects(monitor["spec"].get("selector"), s["metadata"].get("labels") or {})
                   for s in services):
            fail(f"ServiceMonitor/{monitor['metadata']['name']}: selects no Service")
        service_ports = {p.get("name") for s in services for p in s["spec"].get("ports", [])}
        for endpoint in monitor["spec"].get("endpoints", []):
            if endpoint.get("port") not in service_ports:
                fail(f"ServiceMonitor/{monitor['metadata']['name']}: port {endpoint.get('port')!r} is no Service port")

    containers = [c for c in spec["containers"] if c["name"] == "host"]
    if len(containers) != 1:
        fail(f"Deployment/{name}: no container named `host`")
        return
    host = containers[0]
    env = env_of(host)
    mounts = {m["mountPath"]: m for m in host.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}

    # The host's default address is 127.0.0.1, which kubelet and the Service cannot reach.
    listen = env.get("LISTEN_ADDR") or ""
    address, _, port = listen.rpartition(":")
    if address not in ("0.0.0.0", "[::]"):
        fail(f"Deployment/{name}: LISTEN_ADDR must be 0.0.0.0:PORT or [::]:PORT in a pod, not {listen!r}")
    http_ports = [p["containerPort"] for p in host.get("ports", []) if p.get("name") == "http"]
    if [str(p) for p in http_ports] != [port]:
        fail(f"Deployment/{name}: the `http` container port {http_ports} is not LISTEN_ADDR's port {port!r}")

    # Liveness must not depend on the plugin store: /readyz fails while a dataset is away, and a
    # restart cannot bring it back.
    probe_paths = {p: (host.get(p) or {}).get("httpGet", {}).get("path")
                   for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probe_paths["livenessProbe"] != "/healthz":
        fail(f"Deployment/{name}: livenessProbe must be GET /healthz, not {probe_paths['livenessProbe']!r}")
    if probe_paths["readinessProbe"] != "/readyz":
        fail(f"Deployment/{name}: readinessProbe must be GET /readyz, not {probe_paths['readinessProbe']!r}")
    if probe_paths["startupProbe"] not in (None, "/healthz"):
        fail(f"Deployment/{name}: startupProbe must not depend on the store (use /healthz)")

    def volume_under(path):
        """The emptyDir mount that holds `path`, and how many levels below it `path` is."""
        for mount_path, mount in mounts.items():
            relative = posixpath.relpath(path, mount_path)
            if not relative.startswith(".."):
                volume = volumes.get(mount["name"], {})
                depth = 0 if relative == "." else len(relative.split("/"))
                return volume, depth
        return None, 0

    read_only_root = (host.get("securityContext") or {}).get("readOnlyRootFilesystem")
    aot = env.get("AOT_CACHE_DIR")
    if read_only_root:
        if aot is None:
            fail(f"Deployment/{name}: a read-only root needs AOT_CACHE_DIR on a volume")
        else:
            volume, depth = volume_under(aot)
            if volume is None or "emptyDir" not in volume:
                fail(f"Deployment/{name}: AOT_CACHE_DIR {aot} is not on an emptyDir volume")
            elif depth < 2:
                # An emptyDir's root is world-writable; the host refuses a cache folder whose
                # parent others could write to.
                fail(f"Deployment/{name}: AOT_CACHE_DIR {aot} must be at least two levels below its volume's mount")
        if "/tmp" not in mounts:
            fail(f"Deployment/{name}: a read-only root needs a volume at /tmp")

    if env.get("PLUGIN_STORE") == "fluid":
        path = env.get("FLUID_MOUNT_PATH", "/mnt/fluid/plugins")
        mount = mounts.get(path)
        if mount is None:
            fail(f"Deployment/{name}: PLUGIN_STORE=fluid but nothing is mounted at FLUID_MOUNT_PATH {path}")
        else:
            if not mount.get("readOnly"):
                fail(f"Deployment/{name}: the dataset at {path} must be mounted readOnly")
            if mount.get("mountPropagation") != "HostToContainer":
                fail(f"Deployment/{name}: the dataset at {path} needs mountPropagation HostToContainer for FUSE recovery")
            if mount.get("subPath"):
                fail(f"Deployment/{name}: Fluid's FUSE recovery does not support subPath mounts")
            claim = (volumes.get(mount["name"], {}).get("persistentVolumeClaim") or {}).get("claimName")
            datasets = {d["metadata"]["name"] for d in by_kind.get("Dataset", [])}
            if claim not in datasets:
                fail(f"Deployment/{name}: the volume at {path} is not the PVC of a Dataset in this deployment ({sorted(datasets)})")

    def secret_mount_of(path, what):
        """The mount of a Secret volume that holds `path`; a failure if there is none."""
        for mount_path, mount in mounts.items():
            if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                volume = volumes.get(mount["name"], {})
                if "secret" not in volume:
                    fail(f"Deployment/{name}: {what} {path} is not on a Secret volume")
                elif not mount.get("readOnly"):
                    fail(f"Deployment/{name}: the Secret volume with {what} {path} must be mounted readOnly")
                return mount
        fail(f"Deployment/{name}: nothing is mounted where {what} {path} is")
        return None

    # The API faces the cluster's network: callers must say who they are.
    tokens = env.get("TOKENS_FILE")
    if not tokens:
        fail(f"Deployment/{name}: TOKENS_FILE is not set, so anyone who reaches the pod may call every plugin")
    else:
        mount = secret_mount_of(tokens, "TOKENS_FILE")
        if mount is not None and mount.get("subPath"):
            # kubelet never updates a subPath mount: revoked tokens would keep working.
            fail(f"Deployment/{name}: TOKENS_FILE {tokens} is on a subPath mount, which never sees the Secret's updates")
        for monitor in by_kind.get("ServiceMonitor", []):
            for endpoint in monitor["spec"].get("endpoints", []):
                if not (endpoint.get("authorization") or endpoint.get("bearerTokenSecret")):
                    fail(f"ServiceMonitor/{monitor['metadata']['name']}: scrapes without a bearer token, but /metrics needs one")
    for variable in ("TRUST_POLICY",):
        if env.get(variable):
            secret_mount_of(env[variable], variable)
    if env.get("DOCKER_CONFIG"):
        secret_mount_of(env["DOCKER_CONFIG"] + "/config.json", "DOCKER_CONFIG's config.json")

    if env.get("PLUGIN_STORE") == "oci":
        if not env.get("OCI_REPOSITORY"):
            fail(f"Deployment/{name}: PLUGIN_STORE=oci without OCI_REPOSITORY")
        # The default cache folder is under /tmp, a small memory volume here.
        cache = env.get("OCI_CACHE_DIR")
        volume, _ = volume_under(cache) if cache else (None, 0)
        if volume is None or "emptyDir" not in volume or volume["emptyDir"].get("medium") == "Memory":
            fail(f"Deployment/{name}: PLUGIN_STORE=oci needs OCI_CACHE_DIR on a disk-backed emptyDir, not {cache!r}")
        # The registry must be reachable: some egress to a port other than DNS, and DNS itself.
        for policy in by_kind.get("NetworkPolicy", []):
            if "Egress" not in (policy["spec"].get("policyTypes") or []):
                continue
            ports = {p.get("port") for rule in policy["spec"].get("egress") or [] for p in rule.get("ports") or [{}]}
            if None not in ports and 53 not in ports:
                fail(f"NetworkPolicy/{policy['metadata']['name']}: PLUGIN_STORE=oci, but DNS (port 53) egress is denied")
            if None not in ports and not ports - {53}:
                fail(f"NetworkPolicy/{policy['metadata']['name']}: PLUGIN_STORE=oci, but no egress reaches a registry")

    # Workers should hit their own memory limit before the container hits its.
    workers = int(env.get("WORKERS") or 0)
    worker_mb = int(env.get("WORKER_MEMORY_MB") or 1024)
    limit = ((host.get("resources") or {}).get("limits") or {}).get("memory")
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    if workers and limit:
        suffix = limit[-2:]
        limit_mb = float(limit[:-2]) * units[suffix] if suffix in units else float(limit) / 2**20
        if workers * worker_mb >= limit_mb:
            fail(f"Deployment/{name}: WORKERS x WORKER_MEMORY_MB ({workers * worker_mb} MiB) must stay below the memory limit {limit}")


def main():
    failures = 0
    for path in sys.argv[1:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]

        def fail(message, path=path):
            nonlocal failures
            failures += 1
            print(f"FAIL {path}: {message}")

        before = failures
        check_stream(docs, fail)
        if failures == before:
            print(f"OK   {path}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
