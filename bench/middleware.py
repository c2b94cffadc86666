"""Counts the SQL queries of each request and reports them in the `X-Bench-Queries` header.

Only the benchmark server (bench.settings) installs it. It counts with
`connection.execute_wrapper`, which works with DEBUG off and costs next to nothing, so the
count comes from the very requests that are timed, through gunicorn, with the real session
cookie or API key, instead of a second in-process run through the test client.
"""

from django.db import connection


class QueryCountMiddleware:
    header = "X-Bench-Queries"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        count = 0

        def counter(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        # A streamed body runs its queries after this point: the header counts the rest.
        response[self.header] = str(count)
        return response
