"""Staff admin for curating the catalogue (4,000+ servers).

Every write goes through registry_app.curation, so each staff change is recorded as a CurationEdit and survives
imports. Deleting an imported tool / credential / launch recipe leaves a tombstone (SuppressedRow) that imports
honour; the server's change page restores such rows and releases pinned fields, and so do the "Restore" action of
the suppressed-rows list and the "Release pinned fields" action of the server list.

The server list stays a fixed handful of queries whatever the page size: counts and source names are
correlated subqueries on the page's rows, filters use EXISTS, and the full result count is not computed. Its
search is the product's own ranked catalogue search (selectors.server_search, hidden servers included), followed
by plain substring matches of name, slug, description and repository URL. The change page shows the upstream
sources as names and links (registry_app.provenance), JSON pretty-printed and credential steps a line each
(registry_app.admin_widgets), long sections collapsed.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ORDER_VAR
from django.contrib.postgres.expressions import ArraySubquery
from django.db import models
from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.forms import Textarea
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from mcpagent.errors import ApplicationError
from registry_app.admin_filters import CategoryFilter, HasCredentialsFilter, HasToolsFilter, SourceFilter
from registry_app.admin_widgets import PrettyJSONWidget, StepsField, schema_parameters
from registry_app.curation import (
    CURATABLE_FIELDS,
    server_children_save,
    server_create_curated,
    server_update_curated,
    servers_merge,
    servers_reembed,
    servers_release_curated,
    servers_set_status,
    servers_set_verified,
    suppressions_restore,
)
from registry_app.models import (
    CredentialRequirement,
    CurationEdit,
    LaunchRecipe,
    McpServer,
    ServerSource,
    ServerTool,
    SuppressedRow,
)
from registry_app.provenance import upstream_refs
from registry_app.selectors import MAX_LIMIT as SEARCH_LIMIT
from registry_app.selectors import server_search

MERGE_LIMIT = 20  # a merge of more servers than this is almost certainly a mis-selection
REEMBED_LIMIT = 500  # about 5 s of embedding; beyond that use `manage.py embed_servers` (a request would time out)
RELEASE_LIMIT = 500  # the confirmation page lists every selected server
_RELATIONS = {ServerTool: "tools", CredentialRequirement: "credentials", LaunchRecipe: "launch_recipes"}


def _count_of(model: type[models.Model]) -> Coalesce:
    rows = model.objects.filter(server=OuterRef("pk")).order_by().values("server").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(rows), 0)


# ------------------------------------------------------------------------------------------------ inlines


class _ChildForm(forms.ModelForm):
    """An emptied JSON box means the field's default ([] or {}), not NULL: those columns are NOT NULL."""

    def clean(self):
        cleaned = super().clean()
        for field in self._meta.model._meta.concrete_fields:
            if isinstance(field, models.JSONField) and not field.null and cleaned.get(field.name, "") is None:
                cleaned[field.name] = field.get_default()
        return cleaned


_JSON_AS_TEXT = {models.JSONField: {"widget": PrettyJSONWidget}}


class CredentialRequirementForm(_ChildForm):
    instructions = StepsField(required=False, label="Instructions")


class ServerToolInline(admin.TabularInline):
    model = ServerTool
    form = _ChildForm
    extra = 0
    classes = ["collapse"]  # a server can have dozens of tools
    fields = ["name", "description", "parameters", "input_schema", "source"]
    readonly_fields = ["parameters", "source"]
    formfield_overrides = {models.TextField: {"widget": Textarea(attrs={"rows": 3, "class": "catalogue-text"})},
                           **_JSON_AS_TEXT}

    @admin.display(description="parameters")
    def parameters(self, obj: ServerTool):
        return schema_parameters(obj.input_schema) if obj.pk else ""


class CredentialRequirementInline(admin.StackedInline):
    model = CredentialRequirement
    form = CredentialRequirementForm
    extra = 0
    fields = [
        ("key", "location", "kind", "service"),
        ("required", "secret"),
        "description",
        "instructions",
        ("pattern", "format", "example"),
        ("default", "choices"),
        "source",
    ]
    readonly_fields = ["source"]
    formfield_overrides = {models.TextField: {"widget": Textarea(attrs={"rows": 2, "class": "catalogue-text"})},
                           **_JSON_AS_TEXT}


class LaunchRecipeInline(admin.StackedInline):
    model = LaunchRecipe
    form = _ChildForm
    extra = 0
    classes = ["collapse"]
    # Stacked, a few fields a row: eleven columns side by side do not fit a screen.
    fields = [("kind", "transport", "priority", "source"), ("command", "identifier", "version"), "url",
              ("args", "env", "headers"), "proxy_env"]
    readonly_fields = ["source"]
    formfield_overrides = _JSON_AS_TEXT


class _ReadOnly:
    """No adding, editing or deleting through the admin (logs and records kept by the code)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnlyInline(_ReadOnly, admin.TabularInline):
    extra = 0
    can_delete = False


class CurationEditInline(_ReadOnlyInline):
    model = CurationEdit
    classes = ["collapse"]
    fields = ["at", "user", "action", "changes"]
    readonly_fields = fields
    verbose_name_plural = "curation history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


# ------------------------------------------------------------------------------------------------ servers


class _OptionalMultipleChoiceField(forms.MultipleChoiceField):
    """Blank entries choose nothing (a form re-posted as shown sends "" for an untouched box)."""

    def to_python(self, value):
        return [item for item in super().to_python(value) if item]


class McpServerForm(forms.ModelForm):
    """The server's fields plus two curation controls of the change page (choices set per server)."""

    release_curated = _OptionalMultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Release pinned fields",
        help_text="Ticked fields are un-pinned: they take the value the server's sources give now, and later "
                  "imports update them again.",
    )
    restore_suppressed = _OptionalMultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Restore deleted imported rows",
        help_text="Rows staff deleted although a source lists them: imports keep them out. Ticked rows come back "
                  "from the server's sources, and later imports update them again.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        server = self.instance
        choices = {
            "release_curated": [(name, name) for name in server.curated_fields],
            "restore_suppressed": [
                (str(row.pk), f"{row} (deleted by {row.user or 'unknown'} on {row.at:%Y-%m-%d %H:%M})")
                for row in SuppressedRow.objects.filter(server=server.pk).select_related("user")
            ] if server.pk else [],
        }
        for name, options in choices.items():
            # Only where there is something to release / restore (McpServerAdmin.get_fieldsets shows the same).
            if options:
                self.fields[name].choices = options
            else:
                del self.fields[name]

    def clean(self):
        cleaned = super().clean()
        both = sorted(set(cleaned.get("release_curated") or ()) & set(self.changed_data))
        if both:
            self.add_error("release_curated", f"Either edit or release {', '.join(both)}, not both at once.")
        return cleaned


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "verified", "official", "featured", "popularity", "tools_count",
                    "credentials_count", "source_names", "updated_at"]
    list_filter = [CategoryFilter, SourceFilter, "status", "verified", "official", "featured", HasCredentialsFilter,
                   HasToolsFilter]
    search_fields = ["name", "slug", "description", "repository_url"]
    list_per_page = 100
    list_max_show_all = 500
    show_full_result_count = False  # the filtered count is enough; the unfiltered one is another full scan
    form = McpServerForm
    actions = ["mark_verified", "mark_unverified", "mark_active", "mark_deprecated", "mark_hidden", "reembed",
               "merge_selected", "merge_into_most_popular", "release_pinned"]
    inlines = [CredentialRequirementInline, ServerToolInline, LaunchRecipeInline, CurationEditInline]
    fieldsets = [
        (None, {"fields": ["at_a_glance", "name", "slug", "description", "repository_url", "homepage", "categories",
                           "license", "provenance"]}),
        ("Curation", {"fields": ["status", "verified", "featured", "official", "popularity", "egress_hosts",
                                 "curated_fields"]}),
        ("Search and provenance", {"classes": ["collapse"],
                                   "fields": ["first_seen", "last_seen", "updated_at", "content_hash",
                                              "search_document"]}),
    ]
    readonly_fields = ["at_a_glance", "provenance", "curated_fields", "first_seen", "last_seen", "updated_at",
                       "content_hash", "search_document"]

    class Media:
        css = {"all": ["registry_app/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[McpServer]:
        sources = ServerSource.objects.filter(server=OuterRef("pk")).order_by("source").values("source").distinct()
        # The search columns are large and never listed; the change page loads them lazily if it shows them.
        return super().get_queryset(request).defer("search_document", "search_vector").annotate(
            tools_count=_count_of(ServerTool),
            credentials_count=_count_of(CredentialRequirement),
            source_names=ArraySubquery(sources),
        )

    # --- search: the product's own ranked catalogue search, then plain substring matches (slugs, URLs)

    def get_search_results(self, request, queryset, search_term):
        substring, _ = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        try:
            hits = server_search(query=term, limit=SEARCH_LIMIT, include_inactive=True) if term else []
        except ApplicationError:  # over-long or empty after cleaning: substring matches only
            hits = []
        ids = [hit.server.pk for hit in hits]
        if not ids:
            return substring, False
        rank = Case(*[When(pk=pk, then=Value(i)) for i, pk in enumerate(ids)], default=Value(len(ids)),
                    output_field=IntegerField())
        matches = queryset.filter(Q(pk__in=ids) | Q(pk__in=substring.values("pk"))).annotate(search_rank=rank)
        if ORDER_VAR not in request.GET:  # a clicked column header still sorts by that column
            matches = matches.order_by("search_rank", "name", "-pk")
        return matches, False

    @admin.display(description="at a glance")
    def at_a_glance(self, obj: McpServer):
        if not obj.pk:
            return ""
        credentials = list(obj.credentials.values_list("key", "required"))
        recipes = sorted({kind for kind in obj.launch_recipes.values_list("kind", flat=True)})
        keys = ", ".join(f"{key}{'*' if required else ''}" for key, required in credentials) or "none"
        return format_html(
            '<div class="catalogue-glance"><span><strong>{}</strong> tools</span><span><strong>{}</strong> '
            "credentials: {}</span><span>launch: <strong>{}</strong></span><span>status: <strong>{}</strong>"
            "</span></div>",
            obj.tools.count(), len(credentials), keys, ", ".join(recipes) or "no recipe", obj.status,
        )

    @admin.display(description="upstream sources")
    def provenance(self, obj: McpServer):
        if not obj.pk:
            return ""
        rows = list(obj.sources.order_by("source", "source_id").values_list("source", "source_id", "location", "data"))
        refs = upstream_refs(rows)
        if not refs:
            return "none (added by staff)"
        return format_html_join(
            "", '<div class="catalogue-source"><strong>{}</strong>: {} {}</div>',
            ((ref.title,
              format_html('<a href="{}" rel="noreferrer" target="_blank">{}</a>', ref.url, ref.source_id)
              if ref.url else ref.source_id,
              format_html('(<a href="{}" rel="noreferrer" target="_blank">project</a>)', ref.project_url)
              if ref.project_url and ref.project_url != ref.url else "")
             for ref in refs),
        )

    def get_fieldsets(self, request, obj=None):
        # The release / restore controls only where there is something to release or restore.
        extra = []
        if obj is not None and obj.curated_fields:
            extra.append("release_curated")
        if obj is not None and SuppressedRow.objects.filter(server=obj).exists():
            extra.append("restore_suppressed")
        if not extra:
            return self.fieldsets
        return [(name, {**options, "fields": [*options["fields"], *extra]}) if name == "Curation" else (name, options)
                for name, options in self.fieldsets]

    def get_readonly_fields(self, request, obj=None):
        # The slug is the server's identity in sessions and agents: set once, on creation.
        return [*self.readonly_fields, "slug"] if obj else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Hide instead: a deleted server comes back with the next import and loses its curation history.
        return False

    @admin.display(description="tools", ordering="tools_count")
    def tools_count(self, obj: McpServer) -> int:
        return obj.tools_count

    @admin.display(description="credentials", ordering="credentials_count")
    def credentials_count(self, obj: McpServer) -> int:
        return obj.credentials_count

    @admin.display(description="sources")
    def source_names(self, obj: McpServer) -> str:
        return ", ".join(obj.source_names or [])

    # --- every save goes through curation services

    def save_model(self, request, obj, form, change):
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name in CURATABLE_FIELDS}
            saved = server_update_curated(server=obj, user=request.user, changes=changes)
            released = form.cleaned_data.get("release_curated")
            if released:
                servers_release_curated(server_ids=[obj.pk], fields=released, user=request.user)
                saved = McpServer.objects.get(pk=obj.pk)
                for name in released:
                    setattr(obj, name, getattr(saved, name))
            restore = form.cleaned_data.get("restore_suppressed")
            if restore:
                # The choices are this server's own tombstones: nothing else can be posted.
                suppressions_restore(suppression_ids=[int(pk) for pk in restore], user=request.user)
        else:
            data = {name: value for name, value in form.cleaned_data.items() if name in CURATABLE_FIELDS or name == "slug"}
            saved = server_create_curated(user=request.user, data=data)
            # The inline formsets were built on `obj`: they need its primary key to save their rows.
            obj.pk, obj._state.adding = saved.pk, False
        obj.curated_fields = saved.curated_fields

    def save_formset(self, request, form, formset, change):
        relation = _RELATIONS.get(formset.model)
        if relation is None:
            return super().save_formset(request, form, formset, change)  # read-only inlines: nothing to write
        formset.save(commit=False)  # fills new_objects / changed_objects / deleted_objects without writing
        server_children_save(
            server=form.instance, user=request.user, relation=relation, created=formset.new_objects,
            changed=formset.changed_objects, deleted=formset.deleted_objects,
        )

    # --- bulk actions

    def _ids(self, queryset: QuerySet[McpServer]) -> list[int]:
        return list(queryset.values_list("pk", flat=True))

    def _set_status(self, request, queryset, status: str) -> None:
        count = servers_set_status(server_ids=self._ids(queryset), status=status, user=request.user)
        self.message_user(request, f"{count} server(s) marked {status}.", messages.SUCCESS)

    @admin.action(description="Mark selected servers verified", permissions=["change"])
    def mark_verified(self, request, queryset):
        count = servers_set_verified(server_ids=self._ids(queryset), verified=True, user=request.user)
        self.message_user(request, f"{count} server(s) marked verified.", messages.SUCCESS)

    @admin.action(description="Mark selected servers unverified", permissions=["change"])
    def mark_unverified(self, request, queryset):
        count = servers_set_verified(server_ids=self._ids(queryset), verified=False, user=request.user)
        self.message_user(request, f"{count} server(s) marked unverified.", messages.SUCCESS)

    @admin.action(description="Mark selected servers active", permissions=["change"])
    def mark_active(self, request, queryset):
        self._set_status(request, queryset, McpServer.Status.ACTIVE)

    @admin.action(description="Mark selected servers deprecated", permissions=["change"])
    def mark_deprecated(self, request, queryset):
        self._set_status(request, queryset, McpServer.Status.DEPRECATED)

    @admin.action(description="Hide selected servers (never shown in search)", permissions=["change"])
    def mark_hidden(self, request, queryset):
        self._set_status(request, queryset, McpServer.Status.HIDDEN)

    @admin.action(description="Re-embed selected servers", permissions=["change"])
    def reembed(self, request, queryset):
        ids = self._ids(queryset)
        if len(ids) > REEMBED_LIMIT:
            self.message_user(
                request, f"{len(ids)} servers selected; re-embed at most {REEMBED_LIMIT} here, or run "
                "`manage.py embed_servers --all` for the whole catalogue.", messages.WARNING,
            )
            return
        try:
            result = servers_reembed(server_ids=ids, user=request.user)
        except ApplicationError as exc:
            self.message_user(request, f"Re-embedding failed: {exc.message}", messages.ERROR)
            return
        self.message_user(
            request, f"{result.considered} server(s) and their {result.tools_considered} tool(s) re-embedded with "
            f"{result.model}.", messages.SUCCESS,
        )

    def _merge(self, request, target: McpServer, duplicates: list[McpServer]) -> None:
        try:
            servers_merge(target=target, duplicates=duplicates, user=request.user)
        except ApplicationError as exc:
            self.message_user(request, f"Merge failed: {exc.message}", messages.ERROR)
            return
        self.message_user(
            request, f"Merged {len(duplicates)} server(s) into {target.name} ({target.slug}); the duplicates are hidden.",
            messages.SUCCESS,
        )

    def _merge_candidates(self, request, queryset) -> list[McpServer] | None:
        servers = list(queryset.order_by("-popularity", "-official", "-verified", "pk")[: MERGE_LIMIT + 1])
        if len(servers) < 2:
            self.message_user(request, "Select at least two servers to merge.", messages.WARNING)
            return None
        if len(servers) > MERGE_LIMIT:
            self.message_user(request, f"Merge at most {MERGE_LIMIT} servers at a time.", messages.WARNING)
            return None
        return servers

    @admin.action(description="Merge selected duplicates (choose the server to keep)…", permissions=["change"])
    def merge_selected(self, request, queryset):
        servers = self._merge_candidates(request, queryset)
        if servers is None:
            return None
        if request.POST.get("post") == "yes":
            target = next((s for s in servers if str(s.pk) == request.POST.get("target")), None)
            if target is None:
                self.message_user(request, "Choose which server to keep.", messages.ERROR)
            else:
                self._merge(request, target, [s for s in servers if s.pk != target.pk])
            return None
        return self._confirmation(request, "merge_confirmation", action="merge_selected",
                                  title="Merge duplicate servers", servers=servers, default_target=servers[0].pk)

    def _confirmation(self, request, page: str, *, action: str, title: str, servers: list[McpServer],
                      **extra) -> TemplateResponse:
        """The page an action shows to confirm its choice (templates/admin/registry_app/mcpserver/<page>.html),
        posting back to `action` with the selected servers."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "servers": servers,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": action,
            **extra,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"admin/registry_app/mcpserver/{page}.html", context)

    @admin.action(description="Merge selected duplicates into the most popular one", permissions=["change"])
    def merge_into_most_popular(self, request, queryset):
        servers = self._merge_candidates(request, queryset)
        if servers is not None:
            self._merge(request, servers[0], servers[1:])

    @admin.action(description="Release pinned fields of selected servers (choose which)…", permissions=["change"])
    def release_pinned(self, request, queryset):
        servers = list(queryset.order_by("name", "pk")[: RELEASE_LIMIT + 1])
        if len(servers) > RELEASE_LIMIT:
            self.message_user(request, f"Release pinned fields of at most {RELEASE_LIMIT} servers at a time.",
                              messages.WARNING)
            return None
        pinned: dict[str, int] = {}
        for server in servers:
            for name in server.curated_fields:
                pinned[name] = pinned.get(name, 0) + 1
        if not pinned:
            self.message_user(request, "None of the selected servers has pinned fields.", messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            fields = [name for name in request.POST.getlist("fields") if name]
            if fields:
                try:
                    count = servers_release_curated(server_ids=[s.pk for s in servers], fields=fields,
                                                    user=request.user)
                except ApplicationError as exc:
                    self.message_user(request, f"Release failed: {exc.message}", messages.ERROR)
                    return None
                self.message_user(
                    request, f"Released {', '.join(sorted(fields))} on {count} server(s): they follow their sources "
                    "again.", messages.SUCCESS,
                )
                return None
            self.message_user(request, "Choose at least one field to release.", messages.ERROR)
        return self._confirmation(request, "release_confirmation", action="release_pinned",
                                  title="Release pinned fields", servers=servers, pinned=sorted(pinned.items()))


# ------------------------------------------------------------------------------------------------ suppressed rows


@admin.register(SuppressedRow)
class SuppressedRowAdmin(_ReadOnly, admin.ModelAdmin):
    """Imported rows staff deleted (tombstones imports honour): listed, restorable, never edited or deleted by
    hand (a restore goes through curation, which records it and puts the row back)."""

    list_display = ["server", "relation", "label", "user", "at"]
    list_filter = ["relation"]
    list_select_related = ["server", "user"]
    search_fields = ["server__name", "server__slug", "label"]
    list_per_page = 100
    show_full_result_count = False
    actions = ["restore_selected"]
    fields = ["server", "relation", "label", "row", "user", "at"]
    readonly_fields = fields

    def has_restore_permission(self, request) -> bool:
        # Restoring a row edits its server.
        return request.user.has_perm("registry_app.change_mcpserver")

    @admin.action(description="Restore selected rows (from the servers' sources)", permissions=["restore"])
    def restore_selected(self, request, queryset):
        count = suppressions_restore(suppression_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        self.message_user(request, f"{count} row(s) restored; imports update them again.", messages.SUCCESS)


# ------------------------------------------------------------------------------------------------ curation log


@admin.register(CurationEdit)
class CurationEditAdmin(_ReadOnly, admin.ModelAdmin):
    """The audit log: readable by staff, never editable."""

    list_display = ["at", "server", "user", "action", "changed_fields"]
    list_filter = ["action"]
    list_select_related = ["server", "user"]
    search_fields = ["server__name", "server__slug", "user__username", "action"]
    list_per_page = 100
    show_full_result_count = False
    fields = ["at", "server", "user", "action", "changes_table"]
    readonly_fields = fields

    @admin.display(description="changed")
    def changed_fields(self, obj: CurationEdit) -> str:
        names = ", ".join(obj.changes)
        return names if len(names) <= 120 else names[:117] + "..."

    @admin.display(description="changes")
    def changes_table(self, obj: CurationEdit):
        return format_html_join(
            "\n", "<div><strong>{}</strong>: {} &rarr; {}</div>",
            ((name, repr(pair[0] if isinstance(pair, list) and len(pair) == 2 else pair),
              repr(pair[1] if isinstance(pair, list) and len(pair) == 2 else ""))
             for name, pair in obj.changes.items()),
        )
