"""POST /api/sessions/{id}/files: multipart upload of one credential/config file into a session.

Fields: `file` (the file), `type` (credential|config|other, default credential), optional `key` (the
requirement it satisfies, e.g. GOOGLE_APPLICATION_CREDENTIALS) and `server` (catalogue slug). Same checks as
files in /api/chat (sessions_app.filecheck); 201 with the file's metadata, never its content.

The upload never touches the disk: a dedicated upload handler keeps at most FILE_MAX_BYTES in memory and drops
(and flags) anything larger; the client's file name is kept as sent so that traversal attempts are refused
rather than silently repaired by Django's parser.
"""

import io

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser, MultiPartParserError
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpagent.errors import ApplicationError
from mcpagent.schema import error_responses
from sessions_app.credentials import files_store
from sessions_app.selectors import session_get

# Room for multipart boundaries and the small text fields around the file.
_MULTIPART_OVERHEAD = 64 * 1024


class _BoundedMemoryUploadHandler(FileUploadHandler):
    """Buffers the `file` part in memory up to FILE_MAX_BYTES; a larger one is skipped and flagged."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.FILE_MAX_BYTES
        self.too_large = False
        self.raw_names: list[str] = []

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self.raw_names.append(file_name)
        self.buffer = io.BytesIO()
        self.size = 0

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.limit:
            self.too_large = True
            raise SkipFile()
        self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.buffer.seek(0)
        # A neutral name: the client's name is checked (and refused if unsafe) by filecheck, not by Django here.
        return InMemoryUploadedFile(
            self.buffer, self.field_name, "upload", self.content_type, file_size, self.charset,
            self.content_type_extra,
        )


class _RawNameMultiPartParser(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        return file_name or None


class _UploadParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            data, files = _RawNameMultiPartParser(meta, stream, request.upload_handlers, encoding).parse()
        except MultiPartParserError:
            raise ParseError("The multipart body could not be parsed.") from None
        return parsers.DataAndFiles(data, files)


class SessionFileUploadApi(APIView):
    parser_classes = [_UploadParser]

    @extend_schema_serializer(component_name="StoredFileMetadata")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        filename = serializers.CharField()
        type = serializers.CharField()
        server = serializers.CharField(allow_blank=True)
        key = serializers.CharField(allow_blank=True)
        content_type = serializers.CharField()
        detected = serializers.CharField(allow_blank=True)
        size = serializers.IntegerField()
        fingerprint = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(
        request={"multipart/form-data": inline_serializer("SessionFileUpload", {
            "file": serializers.FileField(), "type": serializers.CharField(required=False),
            "key": serializers.CharField(required=False), "server": serializers.CharField(required=False),
        })},
        responses={201: OutputSerializer, **error_responses(413)},
    )
    def post(self, request, session_id: str) -> Response:
        session = session_get(client=request.auth, session_id=session_id)
        limit = settings.FILE_MAX_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + _MULTIPART_OVERHEAD:
            raise ApplicationError(f"The file is larger than {limit} bytes.", code="file_too_large", status=413)
        handler = _BoundedMemoryUploadHandler(request._request)
        request._request.upload_handlers = [handler]
        uploads = request.FILES.getlist("file")
        if handler.too_large:
            raise ApplicationError(f"The file is larger than {limit} bytes.", code="file_too_large", status=413)
        if len(uploads) != 1 or len(handler.raw_names) != 1:
            raise ApplicationError(
                "Send exactly one file in the multipart field 'file'.", code="invalid_file",
                details={"field": "file"},
            )
        fields = {name: request.data.get(name, "") for name in ("type", "key", "server")}
        result = files_store(
            client=request.auth, session=session,
            files=[{"filename": handler.raw_names[0], "data": uploads[0].read(), "type": fields["type"] or "credential",
                    "key": fields["key"], "server": fields["server"]}],
            actor=request.auth, reason="upload",
        )
        result.raise_for_errors()
        return Response(self.OutputSerializer(result.files[0]).data, status=201)
