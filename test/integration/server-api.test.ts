// The server API suite on SQLite (the zero-set-up default). The same suite runs on PostgreSQL in
// server-api-pg.test.ts.
import { apiSuite } from '../helpers/api-suite.js';

apiSuite('sqlite');
