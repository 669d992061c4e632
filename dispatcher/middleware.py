from dispatcher.problems import problem_response


class RejectNulQueryMiddleware:
    """Reject with 400 a NUL character in the query string, which PostgreSQL text columns cannot hold."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return problem_response(400, "invalid_query", "Invalid request",
                                        f"query parameter {name[:60]!r} contains a NUL character; remove it")
        return self.get_response(request)
