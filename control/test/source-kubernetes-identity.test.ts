import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { KubeClient } from '../kubernetes-client.js';
import { reviewToken, tokenReviewAuthenticator } from '../token-review.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import type { CertifyRequestMsg } from '../../api/index.js';

const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

t.test('TokenReview decides the identity', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.tokens.set('tok-web', { username: 'system:serviceaccount:shop:web', audiences: ['weft'], podName: 'web-7c9d8f6b5-abcde' });
  api.tokens.set('tok-api', { username: 'system:serviceaccount:shop:web', audiences: ['https://kubernetes.default.svc'] });
  api.tokens.set('tok-user', { username: 'alice@example.com', audiences: ['weft'] });
  const client = new KubeClient(api.kubeConfig());

  const cases: [string, string, RegExp | { namespace: string; serviceAccount: string; podName?: string }][] = [
    ['projected token with audience weft', 'tok-web', { namespace: 'shop', serviceAccount: 'web', podName: 'web-7c9d8f6b5-abcde' }],
    ['token for the API server audience', 'tok-api', /not authenticated|audiences/],
    ['unknown token', 'forged', /not authenticated/],
    ['a user, not a service account', 'tok-user', /not a service account/],
    ['empty token', '', /no token/],
  ];
  for (const [name, token, want] of cases) {
    const r = await reviewToken(client, token);
    if (want instanceof RegExp) {
      t.ok('error' in r, name);
      if ('error' in r) t.match(r.error, want, `${name}: ${r.error}`);
    } else t.same(r, want, name);
  }
  const req = api.requests.find((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews');
  t.same((req?.body as { spec: unknown }).spec, { token: 'tok-web', audiences: ['weft'] }, 'asks for audience weft');

  const auth = tokenReviewAuthenticator(client);
  const msg = (token: string, namespace: string, sa: string) => ({ token, namespace, service_account: sa }) as unknown as CertifyRequestMsg;
  t.same(await auth(msg('tok-web', 'shop', 'web')), { namespace: 'shop', serviceAccount: 'web' });
  t.same(await auth(msg('tok-web', '', '')), { namespace: 'shop', serviceAccount: 'web' }, 'a sidecar that does not say gets the token identity');
  const lie = await auth(msg('tok-web', 'kube-system', 'admin'));
  t.match(lie, { code: grpc.status.PERMISSION_DENIED, error: /token is for shop\/web, but the sidecar claims kube-system\/admin/ });
  t.match(await auth(msg('forged', 'shop', 'web')), { code: grpc.status.UNAUTHENTICATED });

  // The API server failing is retryable for the sidecar (UNAVAILABLE), not a refusal.
  api.failNext('POST', /tokenreviews$/, 503);
  t.match(await auth(msg('tok-web', 'shop', 'web')), { code: grpc.status.UNAVAILABLE, error: /TokenReview failed/ });
});
