import { defineConfig } from 'drizzle-kit';

// Migrations are generated from src/db/schema.ts (`npm run db:generate`) and applied by wrangler
// (`wrangler d1 migrations apply DB`), which reads the same folder: flat NNNN_name.sql files.
export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema.ts',
  out: './migrations',
  migrations: { prefix: 'index' },
});
