"""schemathesis hooks for .ci/contract.sh.

An Idempotency-Key is a promise from the client that the key names one request. Generated
keys repeat ("0", "00", ...), so most generated requests would be answered 422
idempotency_key_reused (documented, but it stops them before the handler ever runs). In a
valid (positive) case a well-formed key is replaced with a fresh one, so the request reaches
the handler. Negative cases keep theirs: one may be the case that leaves out Authorization to
see the 401, and editing it would make schemathesis revalidate it and send the token after all.
"""

import re
import uuid

import schemathesis

WELL_FORMED = re.compile(r"^[!-~]{1,200}$")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Every request of every phase passes here just before it is sent. `case.meta` is read
    # through its private field: the public property would revalidate the case.
    meta = getattr(case, "_meta", None)
    if meta is None or meta.generation.mode.is_negative or not case.headers:
        return
    for name in list(case.headers):
        if name.lower() == "idempotency-key" and WELL_FORMED.match(str(case.headers[name])):
            case.headers[name] = str(uuid.uuid4())
