"""The OpenAPI 3 description of the facade, served at /sensinact/openapi.json."""

from __future__ import annotations

from typing import Any

from .config import RestSection

_JSON = "application/json"


def _name(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_FILTERS = [
    _query("filter", {"type": "string"}, "A filter in `filterLanguage`"),
    _query("filterLanguage", {"type": "string", "enum": ["ldap", "resource.selector"]}, "Default ldap"),
    _query("ldap", {"type": "string"}, "Legacy: an LDAP filter, optionally in single quotes"),
]


def _answer(description: str, schema_ref: str = "Envelope") -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


# Every request is authenticated first: 401 bad credentials, 429 failed logins from this address paused,
# 503 identity provider unreachable (or the facade stopping).
_AUTH_ERRORS = (401, 429, 503)


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _answer("Error", "Error") for code in sorted({*_AUTH_ERRORS, *codes})}


def _responses(ok: str, *errors: int, schema_ref: str = "Envelope") -> dict[str, Any]:
    return {"200": _answer(ok, schema_ref), **_errors(400, 403, 404, 405, 413, 415, *errors)}


def _get(summary: str, parameters: list[dict[str, Any]], *, filters: bool = False) -> dict[str, Any]:
    # A filter language other than ldap / resource.selector is 501, as in sensiNact.
    return {
        "get": {
            "summary": summary,
            "parameters": parameters + (_FILTERS if filters else []),
            "responses": _responses(summary, *((501,) if filters else ())),
        }
    }


def _post(summary: str, parameters: list[dict[str, Any]], body: str = "Parameters") -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": parameters,
            "requestBody": {
                "required": False,
                "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}},
            },
            "responses": _responses(summary, 409, 502),
        }
    }


def openapi_document(settings: RestSection) -> dict[str, Any]:
    p, s, r = _name("provider"), _name("service"), _name("resource")
    res = "/sensinact/providers/{provider}/services/{service}/resources/{resource}"
    short = "/sensinact/{provider}/{service}/{resource}"
    paths: dict[str, Any] = {
        "/sensinact": _get(
            "COMPLETE_LIST", [_query("attrs", {"type": "string"}, "icon,friendlyName,location")], filters=True
        ),
        "/sensinact/providers": _get("PROVIDERS_LIST", [], filters=True),
        "/sensinact/providers/{provider}": {
            **_get("DESCRIBE_PROVIDER", [p], filters=True),
            **_post('Create or update a provider from a {"svc/res": value} map', [p]),
        },
        "/sensinact/providers/{provider}/services": _get("SERVICES_LIST", [p], filters=True),
        "/sensinact/providers/{provider}/services/{service}": _get("DESCRIBE_SERVICE", [p, s], filters=True),
        "/sensinact/providers/{provider}/services/{service}/resources": _get(
            "RESOURCES_LIST", [p, s], filters=True
        ),
        res: _get("DESCRIBE_RESOURCE", [p, s, r], filters=True),
        "/sensinact/snapshot": _post(
            "SNAPSHOT_RESPONSE", [_query("metadata", {"type": "boolean"}, "Include metadata")], "Selectors"
        ),
        "/sensinact/{provider}": _get("DESCRIBE_PROVIDER (legacy short form)", [p], filters=True),
        "/sensinact/{provider}/{service}": _get("DESCRIBE_SERVICE (legacy short form)", [p, s], filters=True),
        short: _get("DESCRIBE_RESOURCE (legacy short form)", [p, s, r], filters=True),
    }
    paths["/sensinact/openapi.json"] = {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3", "content": {_JSON: {"schema": {"type": "object"}}}}
            },
        }
    }
    # Legacy session tokens; 404 unless the access control issues tokens, 403 for bad credentials.
    paths["/sensinact.login"] = {
        method: {"summary": "TOKEN_CREATION", "responses": _responses("TOKEN_CREATION", schema_ref="Token")}
        for method in ("get", "post")
    }
    for base in (res, short):
        get_params = [
            p,
            s,
            r,
            _query("attributeName", {"type": "string"}, "value (default) or a metadata key"),
            _query("metadata", {"type": "boolean"}, "Include metadata"),
        ]
        paths[f"{base}/GET"] = _get("GET_RESPONSE", get_params)
        paths[f"{base}/SET"] = _post("SET_RESPONSE", [p, s, r])
        paths[f"{base}/ACT"] = _post("ACT_RESPONSE", [p, s, r])
        paths[f"{base}/UNSUBSCRIBE"] = _post("UNSUBSCRIBE_RESPONSE", [p, s, r])
        paths[f"{base}/SUBSCRIBE"] = {
            **_post(
                "SUBSCRIBE_RESPONSE: callback subscription (parameters callback, conditions, policy, "
                "lifetime)",
                [p, s, r],
            ),
            "get": {
                "summary": "Server-Sent Events of the resource (event: data | lifecycle)",
                "parameters": [p, s, r],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    # 404 / 405: a path that names no resource (an empty or '/'-holding segment).
                    **_errors(403, 404, 405),
                },
            },
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "M-Sec sensiNact-compatible REST facade",
            "version": "0.1.0",
            "description": f"Value types are named `{settings.type_names}`; bodies up to "
            f"{settings.max_body_bytes} bytes.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "required": ["type", "uri", "statusCode"],
                    "properties": {
                        "type": {"type": "string"},
                        "uri": {"type": "string"},
                        "statusCode": {"type": "integer"},
                        "response": {},
                        "error": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["type", "uri", "statusCode", "error", "errors"],
                    "properties": {
                        "type": {"type": "string", "enum": ["ERROR"]},
                        "uri": {"type": "string"},
                        "statusCode": {"type": "integer"},
                        "error": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"message": {"type": "string"}}},
                        },
                    },
                },
                "Token": {
                    "type": "object",
                    "required": ["type", "uri", "statusCode", "token"],
                    "properties": {
                        "type": {"type": "string", "enum": ["TOKEN_CREATION"]},
                        "uri": {"type": "string"},
                        "statusCode": {"type": "integer"},
                        "token": {"type": "string"},
                        "generated": {"type": "integer"},
                        "validUntil": {"type": "integer"},
                    },
                },
                "Parameter": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "value": {}},
                },
                "Parameters": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "parameters": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Parameter"},
                                }
                            },
                            "additionalProperties": False,
                        },
                        {"type": "array", "items": {"$ref": "#/components/schemas/Parameter"}},
                    ]
                },
                "Selectors": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
            }
        },
    }
