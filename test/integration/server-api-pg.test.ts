// The server API suite on a real PostgreSQL, started from Debian's binaries for this file
// (initdb in a temp folder, loopback port, stopped after). As root, a missing postgresql package
// is installed with apt first (scripts/system-deps.mjs); otherwise the test fails saying what to install.
import { apiSuite } from '../helpers/api-suite.js';
import { startPostgres } from '../helpers/services.js';

apiSuite('postgres', startPostgres);
