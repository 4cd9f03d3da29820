// Upserting one record by its external id: the batch endpoint with a batch of one (`atomic`, so
// a bad row is a 422 naming its fields), then the record as the API shows it.

const { apiRoot } = require('../authentication');

/** `resource` is `invoices` or `customers`; returns the record with `outcome` (created, …). */
const upsertOne = async (z, bundle, resource, record) => {
  const response = await z.request({
    url: `${apiRoot(bundle)}/${resource}/batch`,
    method: 'POST',
    body: { [resource]: [record], atomic: true },
  });
  const [row] = response.data.results;
  const stored = await z.request({ url: `${apiRoot(bundle)}/${resource}/${row.id}` });
  return { ...stored.data, outcome: row.status };
};

module.exports = { upsertOne };
