#!/usr/bin/env python3
"""Offline validation of custom resources against CRD openAPIV3Schema.

Adapted from the project's shared tools (validate-crs.py) for `cargo xtask check-deploy`, which
runs it from the project's private virtualenv (deploy/requirements.txt).

Usage: validate_crs.py --crds DIR_OR_FILE [--crds ...] [--strict] [--builtin-out FILE] MANIFEST...

* Loads every CustomResourceDefinition (apiextensions.k8s.io/v1) found in --crds.
* For every document in MANIFEST(s) whose apiVersion/kind matches a loaded CRD,
  converts that version's openAPIV3Schema to JSON Schema and reports ALL errors.
* Documents whose kind is not covered by a loaded CRD are skipped (reported as SKIP),
  so the same rendered stream can also go through kubernetes-validate for built-ins.
* --strict: objects that declare `properties` and are not
  x-kubernetes-preserve-unknown-fields / additionalProperties get
  additionalProperties: false (API server would prune/reject unknown fields with
  fieldValidation=Strict, which kubectl >= 1.27 uses by default).
Not covered: x-kubernetes-validations (CEL), list-map key uniqueness, defaults,
admission webhooks (Fluid's webhook mutates Pods, not Datasets).
Exit code 1 if any covered document fails, or a CRD-group document has no CRD.

Changes for this project:
* --builtin-out FILE: every document that is not a custom resource is written there, so that
  kubernetes-validate sees exactly the built-in kinds and none is validated by neither tool.
* A document whose API group is not a Kubernetes built-in group (built-in groups have no dot or
  end in `.k8s.io`) and has no loaded CRD fails instead of being skipped: a custom resource
  nobody validates would pass silently.
"""
import argparse
import copy
import os
import sys

import jsonschema
import yaml

OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def convert(node, strict):
    if isinstance(node, list):
        return [convert(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: convert(pv, strict) for pk, pv in v.items()}
        elif k.startswith("x-kubernetes-") or k in ("nullable", "default", "example", "externalDocs", "format"):
            continue
        else:
            out[k] = convert(v, strict)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (strict and "properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def iter_files(p):
    if os.path.isdir(p):
        for root, _, files in os.walk(p):
            for fn in sorted(files):
                if fn.endswith((".yaml", ".yml", ".json")):
                    yield os.path.join(root, fn)
    else:
        yield p


def is_builtin_group(group):
    """Kubernetes' own API groups: the core group (no group), names without a dot (apps,
    batch, policy, autoscaling) and names under k8s.io. Third-party groups must have a dot."""
    return "." not in group or group == "k8s.io" or group.endswith(".k8s.io")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crds", action="append", required=True)
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--builtin-out", help="write the documents that are not custom resources here")
    ap.add_argument("manifests", nargs="+")
    a = ap.parse_args()

    schemas, groups = {}, set()
    for c in a.crds:
        for fn in iter_files(c):
            for d in load_docs(fn):
                if d.get("kind") != "CustomResourceDefinition":
                    continue
                spec = d["spec"]
                groups.add(spec["group"])
                for v in spec["versions"]:
                    if not v.get("served", True):
                        continue
                    s = convert(v["schema"]["openAPIV3Schema"], a.strict)
                    s.setdefault("properties", {})["metadata"] = copy.deepcopy(OBJECT_META)
                    s.setdefault("required", [])
                    for r in ("apiVersion", "kind", "metadata"):
                        if r not in s["required"]:
                            s["required"].append(r)
                    schemas[(f'{spec["group"]}/{v["name"]}', spec["names"]["kind"])] = s

    failed = 0
    builtin = []
    for m in a.manifests:
        for fn in iter_files(m):
            for d in load_docs(fn):
                key = (d.get("apiVersion"), d.get("kind"))
                name = (d.get("metadata") or {}).get("name")
                api_version = str(d.get("apiVersion", ""))
                group = api_version.split("/")[0] if "/" in api_version else ""
                if key not in schemas:
                    if group in groups:
                        print(f"FAIL {fn}: {key[1]}/{name}: no served CRD version for {key[0]}")
                        failed += 1
                    elif not is_builtin_group(group):
                        print(f"FAIL {fn}: {key[1]}/{name}: no CRD loaded for group {group} (add its CRD to the CRD folder)")
                        failed += 1
                    else:
                        print(f"SKIP {fn}: {key[1]}/{name} ({key[0]}) is a built-in kind")
                        builtin.append(d)
                    continue
                v = jsonschema.Draft4Validator(schemas[key])
                errs = sorted(v.iter_errors(d), key=lambda e: list(e.absolute_path))
                if errs:
                    failed += 1
                    for e in errs:
                        path = ".".join(str(p) for p in e.absolute_path) or "<root>"
                        print(f"FAIL {fn}: {key[1]}/{name}: {path}: {e.message}")
                else:
                    print(f"OK   {fn}: {key[1]}/{name} against {key[0]}")
    if a.builtin_out:
        with open(a.builtin_out, "w") as f:
            yaml.safe_dump_all(builtin, f, sort_keys=False)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
