// Runs the CLI from source (tests use this through tsx; the published bin runs dist/cli/main.js).
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
