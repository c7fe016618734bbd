"""The check schemathesis runs for host/tests/all/openapi.rs beside its own.

A 5xx answer is allowed only when it is a fault of the plugin (its error codes, traps, size,
time), never of the host: PLUGIN_FAULT_CODES, which the Rust test computes from the failure
table, lists the codes that say so.
"""

import os

import schemathesis

PLUGIN_FAULT_CODES = frozenset(os.environ["PLUGIN_FAULT_CODES"].split(","))


@schemathesis.check
def only_plugin_faults_are_server_errors(ctx, response, case):
    """No 5xx other than the documented plugin-fault codes."""
    if response.status_code < 500:
        return None
    try:
        code = response.json()["error"]["code"]
    except Exception:
        raise AssertionError(f"a {response.status_code} answer without a JSON error body")
    if code not in PLUGIN_FAULT_CODES:
        raise AssertionError(f"{response.status_code} `{code}` is not a fault of the plugin")
    return None
