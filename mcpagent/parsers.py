"""The API's JSON parser: DRF's, with a bound on nesting depth.

Python's json module recurses once per nested array/object, so a body nested ~1,000+ levels deep raises
RecursionError (a 500), and anything deep that does parse would make every later recursive walk (serializers,
error scrubbing) costly. Bodies nested deeper than settings.MAX_JSON_DEPTH are a 400 parse_error instead.
"""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def json_depth_exceeds(data, limit: int) -> bool:
    """True if `data` has more than `limit` nested lists/dicts (`[]` is depth 1). Iterative: no recursion."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MAX_JSON_DEPTH
        too_deep = ParseError(f"JSON parse error - nested deeper than {limit} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if json_depth_exceeds(data, limit):
            raise too_deep
        return data
