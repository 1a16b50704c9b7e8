"""Page-number pagination that answers a bad `page` or `page_size` with a 400 instead of quietly using the default."""

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class _PageParams(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, required=False)


class CheckedPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200  # a larger page_size gives this many

    def paginate_queryset(self, queryset, request, view=None):
        _PageParams(data=request.query_params).is_valid(raise_exception=True)
        return super().paginate_queryset(queryset, request, view=view)
