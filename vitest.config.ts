import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Native addons crash under worker-thread pools; each test file gets its own process.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
