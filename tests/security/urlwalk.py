"""Every URL pattern of the project, read from the URL resolver, with its kwargs filled in.

Tests iterate `project_routes()` so a route added tomorrow is tested tomorrow without anyone
remembering to list it. `fill()` refuses a kwarg it has no value for: a new kwarg name must be
given a value from the other tenant's world (tests/security/conftest.py) before the suite passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")
REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?:[^()]|\([^()]*\))*\)")


class UnknownKwarg(LookupError):
    pass


@dataclass(frozen=True)
class Route:
    parts: tuple  # the pattern objects from the root resolver down to this route
    name: str  # "namespace:name", or the joined pattern text when the route has no name
    callback: object

    @property
    def template(self) -> str:
        return "".join(_pattern_text(part) for part in self.parts)

    @property
    def kwarg_names(self) -> list[str]:
        names = []
        for part in self.parts:
            if isinstance(part, RoutePattern):
                names += [m["name"] for m in ROUTE_PARAMETER.finditer(str(part))]
            elif isinstance(part, RegexPattern):
                names += list(part.regex.groupindex)
        return names

    @property
    def view_class(self):
        return getattr(self.callback, "view_class", None)

    def __str__(self) -> str:
        return f"{self.name} ({self.template})"

    def fill(self, values: dict[str, str], *, check: bool = True) -> str:
        """The URL of this route with `values` for its kwargs; checked by resolving it back
        (unless `check` is off: a value no converter takes, e.g. 5,000 digits for <int:>)."""
        missing = [name for name in self.kwarg_names if name not in values]
        if missing:
            raise UnknownKwarg(
                f"Route {self} has URL kwargs {missing} that the security tests cannot fill. "
                "Map each to an object of the tenant under test in tests/security/conftest.py "
                "(kwarg_values) so the route is covered by the isolation tests."
            )
        url = "/" + "".join(_fill_part(part, values) for part in self.parts)
        if not check:
            return url
        match = resolve(url)
        assert match.func == self.callback or match.func.__name__ == self.callback.__name__, (
            f"{url} resolves to {match.view_name}, not to {self}: the walker built a wrong URL"
        )
        return url

    @property
    def is_api(self) -> bool:
        return self.template.startswith("api/")

    @property
    def is_admin(self) -> bool:
        return self.template.startswith("admin/")


def _pattern_text(part) -> str:
    text = str(part)
    if isinstance(part, RegexPattern):
        text = text.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    return text


def _fill_part(part, values) -> str:
    if isinstance(part, RoutePattern):
        return ROUTE_PARAMETER.sub(lambda m: str(values[m["name"]]), str(part))
    text = _pattern_text(part)
    text = REGEX_GROUP.sub(lambda m: str(values[m["name"]]), text)
    # Only simple regexes appear in our URLs (anchors, escaped dots, optional slashes).
    text = text.replace("\\.", ".").replace("/?", "/")
    if re.search(r"[\\^$*+?()\[\]{}|]", text):
        raise AssertionError(f"Cannot build a URL from the regex route {part!r}: {text}")
    return text


def _walk(resolver: URLResolver, parts: tuple, namespace: str):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace
            child_ns = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from _walk(pattern, (*parts, pattern.pattern), child_ns)
        elif isinstance(pattern, URLPattern):
            full_parts = (*parts, pattern.pattern)
            if pattern.name:
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            else:
                name = "".join(_pattern_text(p) for p in full_parts)
            yield Route(parts=full_parts, name=name, callback=pattern.callback)


def project_routes() -> list[Route]:
    routes = list(_walk(get_resolver(), (), ""))
    seen, unique = set(), []
    for route in routes:
        if route.template not in seen:  # a later pattern with the same text never matches
            seen.add(route.template)
            unique.append(route)
    return unique


def tenant_routes() -> list[Route]:
    """Routes under /t/<tenant_slug>/: the tenant's HTML pages."""
    return [route for route in project_routes() if "tenant_slug" in route.kwarg_names]


def api_routes() -> list[Route]:
    return [route for route in project_routes() if route.is_api]
