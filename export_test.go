package mainbus

// BucketOf exposes the bucket of a duration to the tests.
var BucketOf = bucketOf
