// The one Node module the Worker uses, which workerd provides under the `nodejs_compat` flag
// (wrangler.toml). Declared here rather than pulling in all of @types/node, so that nothing
// else of Node's compiles in the Worker's folder.
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    getStore(): T | undefined;
    run<R>(store: T, callback: () => R): R;
  }
}
