"""Xiaolanben (小蓝本 blue-crm open API): signer, wire models, client (003).

Import from the modules themselves (`models`, `auth`, `client`, `errors`): this package
loads nothing, so a process that needs only the wire models never loads httpx.
"""
