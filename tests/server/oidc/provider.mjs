// A real OAuth 2.1 authorization server for the tests: oidc-provider (OpenID Certified),
// listening on 127.0.0.1 at a port the OS picks. It issues JWT access tokens through the
// client_credentials grant for any resource indicator (RFC 8707) it is asked for, so a
// token's `aud` is the resource the test names (the MCP server's /mcp URL).
//
//   node provider.mjs '{"clients": [{"client_id": "full", "client_secret": "...",
//                        "scope": "crmops:read crmops:import crmops:ticket"}]}'
//
// Prints one JSON line on stdout once it listens: {"issuer": "http://127.0.0.1:PORT"}.
// Signs with a fresh RS256 key (and publishes it in its JWKS); access tokens live 300 s.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const SCOPES = ['crmops:read', 'crmops:import', 'crmops:ticket'];
const options = JSON.parse(process.argv[2] ?? '{"clients": []}');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const configuration = {
  clients: options.clients.map((client) => ({
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  jwks: { keys: [signingKey] },
  scopes: SCOPES,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => ({
        scope: SCOPES.join(' '),
        audience: resourceIndicator,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
};

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
