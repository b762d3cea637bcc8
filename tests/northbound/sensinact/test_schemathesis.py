"""Schemathesis against the facade's own OpenAPI document, served by cheroot on loopback.

The document is fetched from the running server; each of its operations gets schemathesis' coverage
cases (boundary and schema-violating values, missing parameters, capped) and then a bounded number of
generated requests (schema-valid and schema-violating ones, with random names and with the names of real
providers, services and resources), deterministically seeded. Every answer must be no undeclared 5xx
(500 never), of a status and content type the document declares and, where it declares a schema, valid
against it.

(schemathesis' own lazy pytest loader, `schemathesis.pytest.from_fixture`, does not run under pytest 9.2:
it sets `Function._nodeid`, which pytest no longer has. So the operations are driven here, one pytest
item each, with `APIOperation.as_strategy` and `Case.call_and_validate`.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent.core.model import Model
from agent.northbound.sensinact import RestSection, close_sensinact_app, create_sensinact_app
from agent.northbound.sensinact.openapi import openapi_document
from agent.security.access import OpenAccess
from agent.web import serve

from .conftest import seed as seed_model

EXAMPLES = 60  # generated requests per operation, schema-valid and -violating mixed; 28 operations


def no_undeclared_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """not_a_server_error, except the 5xx the document declares for the operation (501 for an unknown
    filter language, 502 for a failed action, 503 for too many streams); 500 is never declared."""
    declared = case.operation.definition.raw.get("responses", {})
    if response.status_code != 500 and str(response.status_code) in declared:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_undeclared_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SEED = 20240611
COVERAGE_CASES = 150  # per operation at most; the document gives ~40 on average

# Path parameters naming things that exist, so generated requests reach past the 404s.
TARGETS = [
    {"provider": "light", "service": "switch", "resource": "status"},  # MODIFIABLE state variable
    {"provider": "light", "service": "switch", "resource": "dim"},  # ACTION with a bounded int argument
    {"provider": "slider", "service": "cursor", "resource": "position"},  # sensor reading
    {"provider": "depot", "service": "info", "resource": "operator"},  # FIXED property
    {"provider": "sensiNact", "service": "system", "resource": "version"},  # the built-in provider
]


def _labels() -> list[str]:
    document = openapi_document(RestSection())
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]


@pytest.fixture(scope="module")
def facade_url() -> Iterator[str]:
    # SSE streams (GET .../SUBSCRIBE) end by themselves after a fraction of a second, so a generated
    # stream request cannot hold the run.
    rest = RestSection(stream_max_age=0.05, stream_keepalive=0.05, max_streams=8)
    app = create_sensinact_app(seed_model(Model()), OpenAccess(), rest)  # the facade suite's model
    handle = serve(app, "127.0.0.1", 0, threads=12)
    yield handle.url
    close_sensinact_app(app)
    handle.stop()


@pytest.fixture(scope="module")
def facade_schema(facade_url: str) -> Any:
    config = SchemathesisConfig.from_dict({"seed": SEED, "generation": {"deterministic": True}})
    return schemathesis.openapi.from_url(f"{facade_url}/sensinact/openapi.json", config=config, timeout=10)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def test_the_served_document_has_the_operations_driven_here(
    facade_url: str, session: requests.Session
) -> None:
    served = session.get(f"{facade_url}/sensinact/openapi.json", timeout=10).json()
    labels = {f"{method.upper()} {path}" for path, item in served["paths"].items() for method in item}
    assert labels == set(_labels())


def test_the_document_declares_what_the_facade_answers() -> None:
    """Regressions of what schemathesis found: undeclared answers of the facade."""
    paths = openapi_document(RestSection())["paths"]
    # An unknown filterLanguage is 501 (as in sensiNact) wherever the filters are read, which includes
    # the descriptions of a resource and the legacy short forms.
    for path in (
        "/sensinact",
        "/sensinact/providers/{provider}/services/{service}",
        "/sensinact/providers/{provider}/services/{service}/resources",
        "/sensinact/providers/{provider}/services/{service}/resources/{resource}",
        "/sensinact/{provider}",
        "/sensinact/{provider}/{service}/{resource}",
    ):
        get = paths[path]["get"]
        assert "501" in get["responses"], path
        assert {"filter", "filterLanguage", "ldap"} <= {p["name"] for p in get["parameters"]}, path
    # The SSE stream of a path naming no resource is 404/405; authentication may answer 429/503.
    sse = paths["/sensinact/{provider}/{service}/{resource}/SUBSCRIBE"]["get"]["responses"]
    assert {"200", "401", "403", "404", "405", "429", "503"} <= set(sse)
    assert {"429", "503"} <= set(paths["/sensinact/providers"]["get"]["responses"])
    assert "500" not in {code for item in paths.values() for op in item.values() for code in op["responses"]}
    # The document itself and the legacy token login are operations of the facade too.
    assert "get" in paths["/sensinact/openapi.json"]
    assert set(paths["/sensinact.login"]) == {"get", "post"}


def _cases(operation: Any) -> st.SearchStrategy[Any]:
    names = [p.name for p in operation.path_parameters]
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if names:
            strategies.extend(
                operation.as_strategy(mode, path_parameters={n: target[n] for n in names})
                for target in TARGETS
            )
    return st.one_of(strategies)


@pytest.mark.parametrize("label", _labels())
def test_operation(label: str, facade_schema: Any, facade_url: str, session: requests.Session) -> None:
    operation = facade_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"

    generation = facade_schema.config.generation_for(operation=operation)
    coverage = facade_schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=generation
    )
    for case in itertools.islice(coverage, COVERAGE_CASES):
        case.call_and_validate(base_url=facade_url, session=session, checks=CHECKS, timeout=10)

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases(operation))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=facade_url, session=session, checks=CHECKS, timeout=10)

    run()
