#!/usr/bin/env python3
"""An independent cosign signer, to prove the host reads signatures it did not write.

Written from cosign's specification (specs/SIGNATURE_SPEC.md in sigstore/cosign) with PyPI's
`cryptography`, sharing no code with the project: for the manifest `sha256:<hex>` of
`<registry>/<repository>`, it builds the simple-signing payload, signs it (ECDSA P-256, SHA-256,
ASN.1 DER), writes the signature artifact as an OCI image layout (an empty config, one layer of
media type application/vnd.dev.cosign.simplesigning.v1+json with the base64 signature in the
annotation dev.cosignproject.cosign/signature) and pushes it with `skopeo copy` to the tag
`sha256-<hex>.sig`.

    cosign_sign.py keygen OUT                  # OUT.key (PKCS#8 PEM, 0600) and OUT.pub (SPKI PEM)
    cosign_sign.py sign --key KEY --registry HOST:PORT --repository REPO --digest sha256:HEX
                        --workdir DIR [--payload-digest sha256:OTHER] [--tamper] [--insecure]

--payload-digest signs a payload naming another digest (a replayed signature, for tests);
--tamper changes the payload after signing (for tests).
"""

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


def keygen(out):
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(out + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(out + ".pub", "wb") as file:
        file.write(public)


def payload(reference, digest):
    # Key order and separators as cosign writes them (Go's encoding/json of its structs).
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def write_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as file:
        file.write(data)
    return "sha256:" + digest


def sign(args):
    with open(args.key, "rb") as file:
        key = serialization.load_pem_private_key(file.read(), password=None)
    registry = args.registry.lower()
    signed = payload(f"{registry}/{args.repository}", args.payload_digest or args.digest)
    signature = base64.b64encode(key.sign(signed, ec.ECDSA(hashes.SHA256()))).decode()
    if args.tamper:
        signed = signed.replace(b'"optional":null', b'"optional":{"tampered":true}')

    layout = os.path.join(args.workdir, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as file:
        json.dump({"imageLayoutVersion": "1.0.0"}, file)
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": len(config), "digest": write_blob(layout, config)},
        "layers": [
            {
                "mediaType": PAYLOAD_MEDIA_TYPE,
                "size": len(signed),
                "digest": write_blob(layout, signed),
                "annotations": {SIGNATURE_ANNOTATION: signature},
            }
        ],
    }
    manifest_bytes = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": MANIFEST_MEDIA_TYPE, "size": len(manifest_bytes), "digest": write_blob(layout, manifest_bytes)}
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as file:
        json.dump(index, file)

    tag = args.digest.replace(":", "-") + ".sig"
    tls = ["--dest-tls-verify=false"] if args.insecure else []
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--preserve-digests", *tls, f"oci:{layout}",
         f"docker://{args.registry}/{args.repository}:{tag}"],
        check=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("keygen")
    generate.add_argument("out")
    signer = commands.add_parser("sign")
    signer.add_argument("--key", required=True)
    signer.add_argument("--registry", required=True)
    signer.add_argument("--repository", required=True)
    signer.add_argument("--digest", required=True)
    signer.add_argument("--workdir", required=True)
    signer.add_argument("--payload-digest")
    signer.add_argument("--tamper", action="store_true")
    signer.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    if args.command == "keygen":
        keygen(args.out)
    else:
        sign(args)


if __name__ == "__main__":
    sys.exit(main())
