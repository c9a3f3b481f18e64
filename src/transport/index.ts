export { INSECURE_HOPS, isInsecureHop, isLoopbackHost, type InsecureHop } from './endpoints.js';
export { DATABASE_SSL_MODES, DatabaseTlsError, databaseTransport, type DatabaseSslMode, type DatabaseTransport } from './database-tls.js';
export { redisTlsOptions, redisTransport, redisUrlProblem, type RedisTlsFiles, type RedisTransport } from './redis-tls.js';
export { CERTIFICATE_POLL_MS, CertificateError, reloadCertificates, type LoadedCertificate } from './certificates.js';
export { createListener, requireHttps, strictTransportSecurity, type Listener, type ListenerTls } from './listener.js';
export { createClientTls, type ClientTls, type ClientTlsFiles, type ClientTlsOptions } from './client.js';
export { HSTS_HEADER_VALUE, TLS_CIPHERS, TLS_MIN_VERSION } from './policy.js';
export { isTrustedProxyValue } from './proxies.js';
export { describeTransport, type HopDescription } from './describe.js';
