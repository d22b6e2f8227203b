"""Schemathesis hooks for the idemproof service (see schemathesis.toml).

One hook, and it only narrows one check: `positive_data_acceptance`
(a request valid by the document must not be refused with a 4xx other
than 401/403/404/409/429) keeps failing the run for every refusal except
the three below. Each is a refusal the document states in prose because
JSON Schema cannot express it, and each depends on something outside the
one request being generated:

- 400 `organization_mismatch`: the body's `organization_id` must equal
  the query's (a constraint across two locations);
- 400 `conflicting_idempotency_keys`: the body's `idempotency_key` must
  equal the `Idempotency-Key` header when both are sent (the same);
- 422 `idempotency_key_reused`: the key was used before, in this run, with
  another payload (state: schemathesis draws short keys, and draws them
  again, so this happens often; it is the contract, IETF draft §2.7).

Any other 400 or 422 to a schema-valid request is still a failure, and
so is one of these three codes with another status. Dropped failures are
counted in schemathesis' summary ("dropped by `filter_failure`").
"""

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

# (status, code) of the refusals a schema-valid request may still get.
STATEFUL_REFUSALS = {
    (400, "organization_mismatch"),
    (400, "conflicting_idempotency_keys"),
    (422, "idempotency_key_reused"),
}


def _problem_code(response):
    try:
        body = response.json()
    except Exception:
        return None
    return body.get("code") if isinstance(body, dict) else None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but a positive-data refusal listed above."""
    if isinstance(failure, RejectedPositiveData):
        return (response.status_code, _problem_code(response)) not in STATEFUL_REFUSALS
    return True
