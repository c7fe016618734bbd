"""What schemathesis adds for host/tests/all/openapi.rs beside its own checks.

- A check: a 5xx answer is allowed only when it is a fault of the plugin (its error codes,
  traps, crashes, size, time), never of the host. PLUGIN_FAULT_CODES, which the Rust test
  computes from the failure table, lists the codes that say so.
- Names that exist: random names almost never name a plugin, so a generated plugin or function
  name that the document allows is, half the time, swapped for one the server has
  (PLUGIN_NAMES, FUNCTION_NAMES: the test's plugin folder, read by the ABI checker). Values the
  document forbids (the negative cases) are left alone.
"""

import os
import re

import schemathesis
from hypothesis import strategies as st

PLUGIN_FAULT_CODES = frozenset(os.environ["PLUGIN_FAULT_CODES"].split(","))
PLUGIN_NAMES = os.environ["PLUGIN_NAMES"].split(",")
FUNCTION_NAMES = os.environ["FUNCTION_NAMES"].split(",")

# The document's patterns for the path parameters (checked against the code by a unit test).
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
FUNCTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


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


def _or_real(values, key, real, allowed):
    """`values` as generated, or with `key` swapped for one of `real` when its value is allowed."""
    current = values.get(key)
    if not isinstance(current, str) or (allowed is not None and not allowed.fullmatch(current)):
        return st.just(values)
    return st.one_of(st.just(values), st.sampled_from(real).map(lambda name: {**values, key: name}))


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    return _or_real(path_parameters, "name", PLUGIN_NAMES, PLUGIN_NAME).flatmap(
        lambda values: _or_real(values, "function", FUNCTION_NAMES, FUNCTION_NAME)
    )


@schemathesis.hook
def flatmap_body(ctx, body):
    # `POST /run`: any string is an allowed `plugin` or `function` there.
    if not isinstance(body, dict) or "plugin" not in body:
        return st.just(body)
    return _or_real(body, "plugin", PLUGIN_NAMES, None).flatmap(
        lambda values: _or_real(values, "function", FUNCTION_NAMES, None)
    )
