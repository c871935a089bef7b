"""Bangwo8 (帮我吧) helpdesk, REST v1 (004): tickets over Basic auth or OAuth2 bearer tokens.

Import from the modules themselves (`models`, `auth`, `client`, `errors`): this package
loads nothing, so a process that needs only the wire models never loads httpx.
"""
