// The samples are the examples of Payymo's own OpenAPI document, as they are today.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const samples = require('../samples');

describe('samples', () => {
  it('equal the examples in openapi/openapi.json', () => {
    const spec = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../openapi/openapi.json'), 'utf8'));
    for (const [name, schema] of Object.entries(samples.SCHEMAS)) {
      assert.deepStrictEqual(samples[name], spec.components.schemas[schema].example, `${name} is ${schema}'s example`);
    }
  });
});
