/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts', '<rootDir>/demo/**/*.test.ts', '<rootDir>/bench/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 30000,
  // Two workers on two cores: most suites wait on sockets and child processes, so the wall time
  // halves; the soak and bench-smoke suites carry their own, longer timeouts.
  maxWorkers: 2,
};
