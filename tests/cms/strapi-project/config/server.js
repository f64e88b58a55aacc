module.exports = ({ env }) => ({
  host: env('HOST', '127.0.0.1'),
  port: env.int('PORT', 1337),
  app: { keys: env.array('APP_KEYS') },
  // no update check against the npm registry at start
  logger: { updates: { enabled: false }, startup: { enabled: false } },
});
