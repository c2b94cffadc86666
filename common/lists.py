"""The declared parts of a list page: its filterset, templates, keyset and page sizes.

    class RecordListView(TenantMixin, ListMixin, TemplateView):
        filterset_class = RecordFilterSet
        template_name = "records/record_list.html"
        partial_template_name = "records/partials/record_table.html"
        keyset = RECORDS_KEYSET

        def get_filterset_kwargs(self):
            return {"queryset": ..., "tenant": self.tenant}

The mixin reads the list's parameters (`list_data`: the query string), binds the filterset once
per request, chooses the page size among PAGE_SIZES, pages by keyset (`paginate`) and names the
parameters it could not use (`ignored_params`), so a bookmarked URL with a bad value still
opens and says what it shows instead.
"""

from __future__ import annotations

from functools import cached_property

from .numbers import parse_number
from .paging import DEFAULT_PAGE_SIZE, MAX_PAGE_NUMBER, PAGE_SIZES, Keyset, paged


def page_number_of(value) -> int:
    """The page a URL asks for: 1 for anything that is not a page number; past any list's
    end (MAX_PAGE_NUMBER) for digits beyond it, which the page then says."""
    return parse_number(value, maximum=MAX_PAGE_NUMBER, clamp=True) or 1


class ListMixin:
    filterset_class: type
    template_name: str
    partial_template_name: str  # what htmx swaps in
    keyset: Keyset | None = None
    page_sizes = PAGE_SIZES
    default_page_size = DEFAULT_PAGE_SIZE

    def list_data(self):
        """The list's parameters: filters, sort, page size and position."""
        return self.request.GET

    def get_filterset_kwargs(self) -> dict:
        return {}

    @cached_property
    def filterset(self):
        # No parameters leave the filterset unbound: its form shows its initial values.
        return self.filterset_class(self.list_data() or None, **self.get_filterset_kwargs())

    @cached_property
    def per_page(self) -> int:
        asked = parse_number(self.list_data().get("per_page"), maximum=max(self.page_sizes))
        return asked if asked in self.page_sizes else self.default_page_size

    def list_template(self) -> str:
        htmx = getattr(self.request, "htmx", None)
        if htmx and not htmx.history_restore_request:
            return self.partial_template_name
        return self.template_name

    def paginate(
        self, rows, keyset: Keyset | None = None, number: int | None = None, *, locate=None
    ):
        """One page of `rows` as the request asks: (page, after, before), see common.paging
        (`locate`: where a numbered page starts, from an index; see numbered_page)."""
        data = self.list_data()
        return paged(
            rows,
            keyset,
            page_number_of(data.get("page")) if number is None else number,
            self.per_page,
            after=data.get("after", ""),
            before=data.get("before", ""),
            locate=locate,
        )

    def shown_instead(self, name: str) -> str:
        """What the list shows in place of an invalid value of filter `name`."""
        return "not filtered by it"

    def ignored_params(self) -> list[str]:
        """URL parameters that could not be used, each with what is shown instead."""
        data, filterset = self.list_data(), self.filterset
        ignored = [
            f"{name}={data.get(name)[:40]} is not valid: {self.shown_instead(name)}"
            for name in (filterset.form.errors if filterset.is_bound else ())
            if data.get(name) not in (None, "")
        ]
        asked = data.get("per_page")
        if asked not in (None, "") and str(self.per_page) != asked:
            sizes = ", ".join(str(size) for size in self.page_sizes)
            ignored.append(f"per_page={asked[:20]} is not one of {sizes}: showing {self.per_page}")
        return ignored

    def paging_context(self) -> dict:
        return {
            "filterset": self.filterset,
            "per_page": self.per_page,
            "page_sizes": self.page_sizes,
            "default_per_page": self.default_page_size,
            "ignored_params": self.ignored_params(),
        }
