// @aws-sdk/xml-builder for workerd (aliased in wrangler.toml). The package's "browser" field
// swaps its XML parser for one built on DOMParser, which workerd lacks, and wrangler bundles
// with the browser condition: every XML body the S3 client parses (ListObjectsV2, error
// bodies) then threw "DOMParser is not defined" (aws/aws-sdk-js-v3#7375). This re-exports the
// package with its own pure-JavaScript parser, the one Node uses.
export { XmlNode } from "../../../node_modules/@aws-sdk/xml-builder/dist-es/XmlNode.js";
export { XmlText } from "../../../node_modules/@aws-sdk/xml-builder/dist-es/XmlText.js";
export { parseXML } from "../../../node_modules/@aws-sdk/xml-builder/dist-es/xml-parser.js";
