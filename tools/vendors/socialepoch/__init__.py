"""SocialEpoch (WhatsApp SCRM): signed client, wire models, error mapping.

Import from the modules themselves (`models`, `auth`, `client`, `errors`): this package
loads nothing, so a process that needs only the wire models never loads httpx.
"""
