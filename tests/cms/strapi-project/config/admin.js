module.exports = ({ env }) => ({
  auth: { secret: env('ADMIN_JWT_SECRET') },
  apiToken: { salt: env('API_TOKEN_SALT') },
  transfer: { token: { salt: env('TRANSFER_TOKEN_SALT') } },
  secrets: { encryptionKey: env('ENCRYPTION_KEY') },
  // The admin API is what the tests use; the admin panel's bundle is not built.
  serveAdminPanel: env.bool('SERVE_ADMIN_PANEL', false),
  flags: { nps: false, promoteEE: false },
});
