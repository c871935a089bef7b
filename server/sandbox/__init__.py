"""`crmops sandbox`: every crmops feature against the bundled simulators, no account needed.

    crmops sandbox            # simulators, MCP over HTTP and the Slack bot (with a fake
                              # Slack) on loopback; prints URLs, token, signing secret, env
    crmops sandbox --tour     # a scripted walk through every tool, then exit 0
    crmops sandbox --env      # `export` lines pointing `crmops mcp` at the running sandbox
    crmops sandbox --env --client claude   # the same as an MCP client's config (`clients`)

The running sandbox writes its environment to `sandbox.json` in the crmops data directory
(removed when it stops), which is where `--env` reads it from. Nothing else of the user's is
touched: the tour and the sandbox's MCP server journal and audit into a throwaway database
removed when they stop, and ignore the user's `CRMOPS_*` settings (`CRMOPS_DB`, Redis,
PostgreSQL; `tools.sandbox.self_contained_crmops`).

The Slack side runs in a child process, `crmops slack --sandbox` (`server/` never imports
`bots/`; the `slack` command reaches the CLI through the `crmops.commands` entry points). The
child announces its URLs with one stdout line (`tools.sandbox.SlackSandboxUrls`), is stopped
with the sandbox, and stops by itself when the sandbox process dies (its stdin closes).

One module a job: `state` (the file `--env` reads), `clients` (the configs `--env --client`
prints), `slack` (the bot's child process),
`serve` (serving everything until stopped), `tour` (the scripted walk). The tour shows
results with the CLI's renderer (`server.render`).
"""
